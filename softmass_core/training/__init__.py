"""Making weight sets.

Offers: ``train`` (a complete weight set from a cohort CSV, in named
steps), ``data`` (images in memory, targets, augmentation), ``fit`` (one
model's epochs, schedule and checkpoints), ``retune`` (operating thresholds
and test-time views re-chosen on validation), ``temperature`` (temperature
scaling fitted on validation, before the thresholds), ``interval`` (DLM-1's
operating points and split-conformal score interval, measured there),
``input_stats`` (fits the input check's statistics and limit) and
``baseline`` (the
histogram + logistic-regression baseline).  May import: torch, timm,
filelock, ``inference``, ``cohorts``, ``weights``, ``stats``, ``data``,
``io``, ``errors``, ``labels``.
"""
