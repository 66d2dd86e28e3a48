"""Reading images and regions of interest.

Offers: ``images.load_image`` (PNG, JPEG, BMP, TIFF, DICOM into RGB uint8),
``dicom`` (pydicom, imported on the first DICOM file only), ``pixels`` (what
both decoders share) and ``roi`` (``Roi``, crop, resize and normalise to a
weight set's input).  May import: numpy, Pillow, pydicom, torch (``roi``
only, for tensors), ``softmass_core.errors``, ``labels`` and
``weights.manifest`` (``InputSpec``).
"""
