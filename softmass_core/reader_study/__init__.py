"""The reader study: radiologists before and after seeing the model's result.

Offers: ``store`` (the SQL database of readers, PINs, reads and Grad-CAM
grades, with its schema version and upgrades) and ``cases`` (the study's own
blinded cases and the administrator's summary).  May import: SQLAlchemy,
``stats``, ``data.demo``, ``errors``, ``labels``.
"""
