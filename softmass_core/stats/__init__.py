"""Diagnostic-accuracy statistics as journals report them, with confidence intervals.

Modules, by what they compute:

* :mod:`~softmass_core.stats.roc`: ROC curve, AUC (rank formula), DeLong
  variance and interval of the AUC, the paired DeLong test of two AUCs, a
  stratified bootstrap interval of the AUC, and the Youden threshold.
* :mod:`~softmass_core.stats.intervals`: Clopper-Pearson interval of a
  proportion, the Mercaldo logit interval of PPV/NPV, the bootstrap F1.
* :mod:`~softmass_core.stats.counts`: the 2 x 2 counts at a threshold.
* :mod:`~softmass_core.stats.binary`: every headline metric of a binary test
  with its interval (:func:`~softmass_core.stats.binary.binary_metrics`).
* :mod:`~softmass_core.stats.curves`: calibration curve and threshold sweep
  for the dashboard.
* :mod:`~softmass_core.stats.calibration`: expected calibration error and
  temperature scaling (fit, 5-fold cross-validated keep-or-not).
* :mod:`~softmass_core.stats.localisation`: where a heatmap sits against a
  lesion mask (energy inside, pointing game, border share, Gaussian baseline).
* :mod:`~softmass_core.stats.hypothesis_tests`: McNemar, chi-square, one-way
  ANOVA.
* :mod:`~softmass_core.stats.tables`: the paper's Table 1 (baseline
  characteristics by cohort, with ANOVA and chi-square).
* :mod:`~softmass_core.stats.formatting`: the one p-value formatter of the
  core's and the dashboard's tables and the model cards (standard library only).
* :mod:`~softmass_core.stats.reader_study`: accuracy before and after the
  model per reader, with McNemar (the reader study's table).
* :mod:`~softmass_core.stats.estimate` (:class:`Estimate`,
  :class:`UndefinedMetricWarning`) and :mod:`~softmass_core.stats.validation`
  (input checks shared by the modules above).

Conventions (after ``sklearn.metrics``): data are positional, options are
keyword-only, and ``*_curve`` functions return arrays while the others return
numbers, :class:`~softmass_core.stats.estimate.Estimate` objects or plain dicts.

* ``labels`` are 0/1 integers or booleans, 1 (True) meaning *positive*
  (e.g. malignant).  Shape ``(n,)``.
* ``scores`` are finite floats of any range, larger meaning "more positive".
  A case is called positive when ``score >= threshold``.  Shape ``(n,)``.
* A metric that is undefined for the data at hand (one class only, no
  predicted positives, ...) returns NaN and emits ``UndefinedMetricWarning``;
  it never raises.  Malformed input (wrong shape, labels other than 0/1,
  NaN scores) raises :class:`~softmass_core.errors.MetricsError` with a
  message that quotes the bad value.

Intervals follow the usual reporting conventions (MedCalc's diagnostic test
module): Clopper-Pearson for sensitivity, specificity and accuracy; the
Mercaldo et al. (2007) standard logit interval for PPV and NPV; DeLong for the
AUC; a percentile bootstrap for F1.  Fractions are in [0, 1], never percent.
Where a kept library computes the same thing it is called (scipy's exact
binomial interval, statsmodels' McNemar, scikit-learn's ROC curve and
confusion matrix); DeLong, the Mercaldo interval and the bootstrap F1 are
written here, since no kept library offers them.

Dependencies: numpy, scipy, scikit-learn and statsmodels; pandas for the
tables and sweeps; from softmass_core only ``errors`` and ``labels`` (the
label order and display names of Table 1 and the reader study).  Nothing
here imports torch, images or the rest of the engine
(``tests/test_core_purity.py`` checks it).  This file imports nothing, so
importing one module loads only the libraries that module needs: import from
the modules, e.g. ``from softmass_core.stats.roc import auc_delong``.
"""
