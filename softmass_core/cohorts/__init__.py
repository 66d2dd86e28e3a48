"""Weight sets on cohorts of cases.

Offers: ``cohort`` (the cohort CSV), ``cohort_zip`` (an uploaded zip of a
cohort), ``evaluate`` (batched scoring and the paper's Tables 2-3 metrics),
``evalcache`` (evaluations stored on disk by weight-set sha256 + cohort),
``compare`` (two sets on the same cases, paired DeLong and McNemar), ``curves``
(threshold sweeps and calibration per cohort), ``calibration`` (expected
calibration error per cohort and task), ``shift`` (scanner shift on
re-scanned cases), ``replicates`` (independent replicates of a set's
metrics) and ``overlap`` (images a weight set was trained or
validated on, found again in a cohort by their sha256).  May import:
``inference``, ``io``, ``weights``,
``stats``, ``errors``, ``labels``, pandas, filelock.
"""
