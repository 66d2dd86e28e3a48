"""softmass_core: the Streamlit-free engine of the softmass DLM demo.

Subpackages, each named for what it does (its ``__init__`` says what it
offers and what it may import):

* ``io``: images (PNG, JPEG, BMP, TIFF, DICOM) and regions of interest.
* ``weights``: weight sets as data (manifest, timm models, model cards).
* ``inference``: the cascade, test-time views, Grad-CAM, focus grades, serving.
* ``stats``: ROC/AUC with DeLong, intervals, hypothesis tests, tables.
* ``cohorts``: cohort CSVs, evaluation, stored results, set comparison, shift.
* ``reader_study``: the study's database and cases.
* ``data``: the phantom (simulated cases), BUSI cohorts, demo cases.
* ``training``: training, retuning, the baseline.
* ``cli``: ``python -m softmass_core``, the only owner of argparse.

Beside them: ``errors`` (typed errors), ``labels`` (classes and display
names), ``paths``, ``jsonsafe``, ``report`` (case reports) and ``bench``.
"""

__version__ = "0.1.0"
