"""The paper's Table 1: patient and tumour baseline characteristics by cohort, with their tests."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from softmass_core.errors import MetricsError
from softmass_core.labels import COHORT_LABELS, display_name
from softmass_core.stats.estimate import UndefinedMetricWarning
from softmass_core.stats.formatting import format_p
from softmass_core.stats.hypothesis_tests import anova_oneway, chi_square_test
from softmass_core.stats.validation import show

_SEX_CODES = {"m": True, "male": True, "man": True, "f": False, "female": False, "woman": False}


def _sex_is_male(values: pd.Series, column: str) -> pd.Series:
    """True for male, False for female, None where unknown; raises on other codes."""
    out = []
    for v in values.tolist():
        key = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        key = key.strip().lower()
        if key in ("", "nan", "<na>", "none"):
            out.append(None)
        elif key in _SEX_CODES:
            out.append(_SEX_CODES[key])
        else:
            raise MetricsError(
                f"Column {column!r} must hold 'male'/'female' (or 'M'/'F'); found {show(v)}. Leave unknown sex empty."
            )
    return pd.Series(out, index=values.index, dtype="object")


def baseline_table(
    df: pd.DataFrame,
    *,
    group_col: str = "cohort",
    age_col: str = "age",
    sex_col: str = "sex",
    label_col: str = "label",
    label_title: str = "Class",
) -> pd.DataFrame:
    """Patient and tumour baseline characteristics, shaped like the paper's Table 1.

    One column per cohort (in order of first appearance) plus ``"p"``, which
    names the test.  Rows (strings, ready to print):

    * ``n``: cases per cohort;
    * ``Age (years), mean ± SD``: one-way ANOVA across cohorts;
    * ``Male, n (%)``: percent of cases with known sex; chi-square test;
    * ``"<label_title>, n"`` (e.g. ``Class, n``): the cases with a label in
      each cohort and the chi-square p-value of label by cohort, then one
      ``"<label>, n (%)"`` row per label present (percent of the cohort).

    Missing columns, or columns that are entirely empty, skip their rows;
    individual missing ages or sexes are left out of that row only.
    """
    if not isinstance(df, pd.DataFrame):
        raise MetricsError(f"baseline_table needs a pandas DataFrame; got {type(df).__name__}.")
    if group_col not in df.columns:
        raise MetricsError(f"Column {group_col!r} not found; available columns: {list(df.columns)}.")
    if len(df) == 0:
        raise MetricsError("baseline_table got an empty table.")
    if df[group_col].isna().any():
        raise MetricsError(
            f"Column {group_col!r} has {int(df[group_col].isna().sum())} empty cells; every case needs a cohort."
        )
    groups = [str(g) for g in pd.unique(df[group_col].astype(str))]
    group = df[group_col].astype(str)
    rows: dict[str, list[str]] = {}

    rows["n"] = [str(int((group == g).sum())) for g in groups] + [""]

    if age_col in df.columns and df[age_col].notna().any():
        age = pd.to_numeric(df[age_col], errors="coerce")
        bad = df[age_col].notna() & age.isna()
        if bad.any():
            raise MetricsError(f"Column {age_col!r} must hold numbers; found {show(df[age_col][bad].iloc[0])}.")
        cells, samples = [], []
        for g in groups:
            a = age[(group == g) & age.notna()].to_numpy(float)
            if a.size:
                sd = f"{np.std(a, ddof=1):.1f}" if a.size > 1 else "n/a"
                cells.append(f"{a.mean():.1f} ± {sd}")
                samples.append(a)
            else:
                cells.append("n/a")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = anova_oneway(*samples)["p_value"] if len(samples) >= 2 else math.nan
        rows["Age (years), mean ± SD"] = cells + [format_p(p, "ANOVA")]

    if sex_col in df.columns and df[sex_col].notna().any():
        male = _sex_is_male(df[sex_col], sex_col)
        cells, table = [], []
        for g in groups:
            known = [v for v in male[group == g].tolist() if v is not None]
            k, n = sum(known), len(known)
            cells.append(f"{k} ({100.0 * k / n:.1f}%)" if n else "n/a")
            table.append([k, n - k])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = chi_square_test(np.array(table).T)["p_value"]
        rows["Male, n (%)"] = cells + [format_p(p, "chi-square")]

    if label_col in df.columns and df[label_col].notna().any():
        label = df[label_col].astype("string")
        present = [str(v) for v in pd.unique(label.dropna())]
        ordered = [x for x in COHORT_LABELS if x in present]
        ordered += sorted(x for x in present if x not in COHORT_LABELS)
        counts = np.array([[int(((group == g) & (label == x)).sum()) for g in groups] for x in ordered])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = chi_square_test(counts)["p_value"]
        sizes = [int((group == g).sum()) for g in groups]
        labelled = [str(int(k)) for k in counts.sum(axis=0)]
        rows[f"{label_title}, n"] = labelled + [format_p(p, "chi-square")]
        for x, row in zip(ordered, counts, strict=True):
            rows[f"{display_name(x)}, n (%)"] = [
                f"{k} ({100.0 * k / n:.1f}%)" for k, n in zip(row, sizes, strict=True)
            ] + [""]

    out = pd.DataFrame.from_dict(rows, orient="index", columns=[*groups, "p"])
    out.index.name = "Characteristic"
    return out
