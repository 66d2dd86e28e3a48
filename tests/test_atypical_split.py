"""research/atypical_split.py: AUC of a task's typical and atypical positives, each against all negatives."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from softmass_core.errors import SoftmassError
from softmass_core.labels import SUBTYPES
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("atypical_split", ROOT / "research" / "atypical_split.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def _tables():
    # validation: 2 typical lipomas scored 0.9/0.8, 2 atypical ones 0.5/0.2; negatives (benign) 0.6, 0.3, 0.1
    cases = [
        ("c0", "lipoma", 0.9, ""),
        ("c1", "lipoma", 0.8, ""),
        ("c2", "lipoma", 0.5, "echo:epidermal_cyst"),
        ("c3", "lipoma", 0.2, "vascular:malignant;echo:neurinoma"),
        ("c4", "epidermal_cyst", 0.6, ""),
        ("c5", "hemangioma", 0.3, "geometry:lipoma"),
        ("c6", "neurinoma", 0.1, ""),
        ("c7", "malignant", 0.0, ""),
    ]
    pred = pd.DataFrame(
        {
            "case_id": [c[0] for c in cases],
            "cohort": "validation",
            "label": [c[1] for c in cases],
            "y_malignant": [int(c[1] == "malignant") for c in cases],
            "p_malignant": [0.9 if c[1] == "malignant" else 0.1 * i for i, c in enumerate(cases)],
            **{f"score_{s}": [c[2] if s == "lipoma" else 0.5 for c in cases] for s in SUBTYPES},
        }
    )
    cohort = pd.DataFrame(
        {
            "case_id": [c[0] for c in cases],
            "cohort": "validation",
            "label": [c[1] for c in cases],
            "atypical": [c[3] for c in cases],
        }
    )
    return pred, cohort


def test_typical_and_atypical_positives_are_scored_against_all_negatives():
    pred, cohort = _tables()
    rows = {(r["cohort"], r["task"]): r for r in tool.split_rows(pred, cohort)}
    lip = rows[("validation", "lipoma")]
    assert (lip["n_positive"], lip["n_positive_atypical"], lip["n_negative"]) == (4, 2, 3)
    assert lip["auc_typical_positives"] == pytest.approx(1.0)  # 0.9 and 0.8 beat 0.6, 0.3, 0.1
    assert lip["auc_atypical_positives"] == pytest.approx(3 / 6)  # 0.5 beats 0.3, 0.1; 0.2 beats 0.1
    assert lip["auc"] == pytest.approx(9 / 12)
    dlm1 = rows[("validation", "dlm1")]  # the malignant case is typical, so it has no atypical positives
    assert dlm1["n_positive"] == 1 and dlm1["n_negative"] == 7 and dlm1["auc_typical_positives"] == 1.0
    assert dlm1["auc_atypical_positives"] != dlm1["auc_atypical_positives"]  # NaN: none to score
    assert {t for _, t in rows} == {"dlm1", *SUBTYPES}


def test_a_cohort_without_the_column_or_with_other_cases_is_refused(tmp_path, capsys):
    pred, cohort = _tables()
    with pytest.raises(SoftmassError, match="no 'atypical' column"):
        tool.split_rows(pred, cohort.drop(columns="atypical"))
    with pytest.raises(SoftmassError, match="not in the cohort CSV"):
        tool.split_rows(pred, cohort.iloc[:5])
    other_draw = cohort.assign(label=cohort["label"].iloc[::-1].to_numpy())  # same ids, other cases
    with pytest.raises(SoftmassError, match="other labels to the same case ids"):
        tool.split_rows(pred, other_draw)
    pred.to_csv(tmp_path / "p.csv", index=False)
    cohort.drop(columns="atypical").to_csv(tmp_path / "c.csv", index=False)
    assert tool.main(["--predictions", str(tmp_path / "p.csv"), "--cohort", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The cohort CSV has no 'atypical' column") and err.count("\n") == 1
    assert tool.main(["--predictions", str(tmp_path / "nope.csv"), "--cohort", str(tmp_path / "c.csv")]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
    cohort.to_csv(tmp_path / "c.csv", index=False)
    assert tool.main(["--predictions", str(tmp_path / "p.csv"), "--cohort", str(tmp_path / "c.csv"), "--json"]) == 0
    assert '"auc_atypical_positives": 0.5' in capsys.readouterr().out
