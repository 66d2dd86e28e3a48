"""Where cases come from.

Offers: ``phantom`` (simulated grey-scale and colour Doppler cases of the
six classes, three simulated hospitals), ``busi`` (cohort CSVs from the
public BUSI breast-ultrasound set) and ``demo`` (the app's demo cases).  May
import: numpy, scipy.ndimage, Pillow, ``io``, ``errors``, ``labels``; the
phantom never imports torch.
"""
