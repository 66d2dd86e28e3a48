"""Weight sets on cohorts of cases.

Offers: ``cohort`` (the cohort CSV), ``cohort_zip`` (an uploaded zip of a
cohort), ``evaluate`` (batched scoring and the paper's Tables 2-3 metrics),
``evalcache`` (evaluations stored on disk by weight-set sha256 + cohort),
``compare`` (two sets on the same cases, paired DeLong), ``curves``
(threshold sweeps and calibration per cohort), ``calibration`` (expected
calibration error per cohort and task) and ``shift`` (scanner shift
on re-scanned cases).  May import: ``inference``, ``io``, ``weights``,
``stats``, ``errors``, ``labels``, pandas, filelock.
"""
