"""Re-scanning simulated patients on another scanner, and the paired scanner-shift comparison."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from softmass_core.cohorts.cohort import read_cohort
from softmass_core.cohorts.shift import COLUMNS, format_table, paired_shift, scanner_shift
from softmass_core.data.phantom import generate_case, generate_cohorts, rescan_name
from softmass_core.errors import CohortError, SoftmassError
from softmass_core.inference.cascade import Cascade
from softmass_core.labels import DLM1, MALIGNANT, SUBTYPES
from softmass_core.stats.roc import delong_test
from softmass_core.weights.weight_set import WeightSet


def test_rescan_keeps_the_patient_and_changes_the_scanner():
    first = generate_case("neurinoma", hospital=1, seed=5)
    again = generate_case("neurinoma", hospital=3, seed=5, anatomy_hospital=1)
    other = generate_case("neurinoma", hospital=3, seed=5)
    assert again.meta["params"] == first.meta["params"]
    assert (again.age, again.sex) == (first.age, first.sex)
    assert again.meta["lesion_size_mm"] == first.meta["lesion_size_mm"]
    assert again.meta["signs"] == first.meta["signs"]
    assert again.meta["anatomy_hospital"] == 1 and again.hospital == 3
    assert again.gray.shape == other.gray.shape != first.gray.shape  # hospital 3's screen
    assert other.meta["params"] != first.meta["params"]  # an ordinary hospital-3 case is another patient


def test_anatomy_hospital_equal_to_hospital_changes_nothing():
    a = generate_case("lipoma", hospital=2, seed=9)
    b = generate_case("lipoma", hospital=2, seed=9, anatomy_hospital=2)
    assert a.gray.tobytes() == b.gray.tobytes() and a.cdfi.tobytes() == b.cdfi.tobytes()
    assert a.meta == b.meta


def test_rescan_of_an_unknown_hospital_is_refused(tmp_path):
    with pytest.raises(SoftmassError, match="Unknown simulated hospital"):
        generate_case("lipoma", hospital=3, seed=1, anatomy_hospital=7)
    with pytest.raises(SoftmassError, match="Unknown simulated hospital"):
        generate_cohorts(tmp_path, scale=0.001, cohorts=["validation"], rescan_hospital=9)


@pytest.fixture(scope="module")
def paired_cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("rescan")
    orig = generate_cohorts(root / "orig", seed=3, scale=0.04, cohorts=["validation", "test_a"])
    again = generate_cohorts(root / "h3", seed=3, scale=0.04, cohorts=["validation"], rescan_hospital=3)
    return orig, again


def test_rescan_cohort_keeps_ids_and_labels(paired_cohorts):
    orig, again = paired_cohorts

    def rows(path):
        with path.open(newline="") as fh:
            return {r["case_id"]: r for r in csv.DictReader(fh)}

    a, b = rows(orig), rows(again)
    a = {k: v for k, v in a.items() if v["cohort"] == "validation"}
    assert a.keys() == b.keys() and len(a) >= 6
    for cid in a:
        assert a[cid]["label"] == b[cid]["label"]
        assert (a[cid]["age"], a[cid]["sex"]) == (b[cid]["age"], b[cid]["sex"])
        assert b[cid]["cohort"] == rescan_name("validation", 3) == "validation_h3"
        assert (a[cid]["hospital"], b[cid]["hospital"]) == ("1", "3")


def _predictions(labels, p_mal, sub_scores, ids=None):
    df = pd.DataFrame({"case_id": ids or [f"c{i}" for i in range(len(labels))], "label": labels})
    df["p_malignant"] = p_mal
    for subtype in SUBTYPES:
        df[f"score_{subtype}"] = sub_scores[subtype]
    return df


def test_paired_shift_matches_the_paired_delong_test():
    rng = np.random.default_rng(0)
    labels = [MALIGNANT] * 8 + [s for s in SUBTYPES for _ in range(8)]
    y = np.array([lab == MALIGNANT for lab in labels], dtype=float)
    p_o = np.clip(y * 0.5 + rng.uniform(0, 0.6, len(labels)), 0, 1)
    p_r = np.clip(y * 0.2 + rng.uniform(0, 0.6, len(labels)), 0, 1)
    subs_o = {s: rng.uniform(size=len(labels)) for s in SUBTYPES}
    subs_r = {s: rng.uniform(size=len(labels)) for s in SUBTYPES}
    # The rescan table comes in another row order: pairing must go by case id.
    orig = _predictions(labels, p_o, subs_o)
    again = _predictions(labels, p_r, subs_r).iloc[::-1].reset_index(drop=True)
    rows = paired_shift(orig, again)
    assert [r["task"] for r in rows] == [DLM1, *SUBTYPES]
    assert all(tuple(r) == COLUMNS for r in rows)
    want = delong_test(y.astype(int), p_r, p_o)
    got = rows[0]
    assert (got["n"], got["n_positive"]) == (48, 8)
    assert got["auc_original"] == pytest.approx(want["auc_b"])
    assert got["auc_rescan"] == pytest.approx(want["auc_a"])
    assert got["difference"] == pytest.approx(want["auc_a"] - want["auc_b"])
    assert got["p_value"] == pytest.approx(want["p_value"])
    assert got["difference"] < 0  # the rescan scores were made less informative
    benign = np.array([lab in SUBTYPES for lab in labels])
    lip = rows[1]
    yl = np.array([lab == "lipoma" for lab in labels])[benign].astype(int)
    ref = delong_test(yl, subs_r["lipoma"][benign], subs_o["lipoma"][benign])
    assert (lip["n"], lip["n_positive"]) == (40, 8)
    assert lip["difference"] == pytest.approx(ref["auc_difference"])
    table = format_table(rows).splitlines()
    assert len(table) == 7 and table[1].startswith(DLM1)
    assert f"{got['difference']:+.3f}" in table[1]


def test_paired_shift_refuses_different_patients_and_no_overlap():
    subs = {s: np.zeros(2) for s in SUBTYPES}
    a = _predictions(["lipoma", MALIGNANT], [0.1, 0.9], subs)
    b = _predictions([MALIGNANT, "lipoma"], [0.1, 0.9], subs)
    with pytest.raises(CohortError, match="not the same patients"):
        paired_shift(a, b)
    c = _predictions(["lipoma", MALIGNANT], [0.1, 0.9], subs, ids=["x1", "x2"])
    with pytest.raises(CohortError, match="No case id appears in both"):
        paired_shift(a, c)


def test_scanner_shift_runs_a_weight_set_on_paired_cohorts(tiny_weights, paired_cohorts):
    orig, again = paired_cohorts
    seen = []
    rows = scanner_shift(
        Cascade(WeightSet.load(tiny_weights)),
        read_cohort(orig),
        read_cohort(again),
        progress=lambda d, t: seen.append((d, t)),
    )
    n = len(read_cohort(orig).subset(["validation"]).rows)  # only the re-scanned cases are scored
    assert rows[0]["task"] == DLM1 and rows[0]["n"] == n
    assert {r["task"] for r in rows[1:]} == set(SUBTYPES)
    assert seen[-1] == (2 * n, 2 * n)
    for r in rows:
        assert 0.0 <= r["auc_original"] <= 1.0 and 0.0 <= r["auc_rescan"] <= 1.0
        assert r["difference"] == pytest.approx(r["auc_rescan"] - r["auc_original"])


@pytest.mark.slow
def test_shift_cli_prints_json_and_refuses_unpaired_cohorts(tiny_weights, paired_cohorts, tmp_path):
    orig, again = paired_cohorts
    cmd = [sys.executable, "-m", "softmass_core", "shift", "--weights", str(tiny_weights), "--quiet"]
    done = subprocess.run(
        [*cmd, "--original", str(orig), "--rescan", str(again), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r["task"] for r in out["rows"]] == [DLM1, *SUBTYPES]
    other = generate_cohorts(tmp_path / "other", seed=99, scale=0.001, cohorts=["test_a"])
    bad = subprocess.run([*cmd, "--original", str(other), "--rescan", str(again)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "No case of" in bad.stderr


@pytest.mark.slow
def test_shift_cli_records_the_table_in_the_manifest_and_model_card(tiny_weights, paired_cohorts, tmp_path):
    orig, again = paired_cohorts
    ws = tmp_path / "ws"
    shutil.copytree(tiny_weights, ws)
    done = subprocess.run(
        [sys.executable, "-m", "softmass_core", "shift", "--weights", str(ws), "--quiet"]
        + ["--original", str(orig), "--rescan", str(again), "--record", "h3"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((ws / "manifest.json").read_text())
    entry = manifest["scanner_shift"]["rescans"]["h3"]
    assert (entry["original"], entry["rescan"]) == ("validation", "validation_h3")
    assert [r["task"] for r in entry["rows"]] == [DLM1, *SUBTYPES]
    assert entry["command"].startswith("python -m softmass_core shift --weights")
    card = (ws / "README.md").read_text()
    assert "## Scanner shift on identical lesions" in card and "re-scanned as `validation_h3`" in card
    assert WeightSet.load(ws).verified  # weights and their sha256 untouched


@pytest.mark.slow
def test_scanner_screen_tool_takes_hospital_3_apart(tiny_weights, paired_cohorts, tmp_path):
    from softmass_core.data.phantom import HOSPITALS

    orig, _ = paired_cohorts
    shipped = HOSPITALS[3]
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "research"))
    try:
        import scanner_screen
    finally:
        sys.path.pop(0)
    names = [name for name, _ in scanner_screen.arms(3)]
    assert names[0] == "plain scanner" and names[-1] == "as shipped"
    assert {"+ steered compounding", "+ coarse line density", "+ edge enhancement", "+ tighter ROIs"} <= set(names)
    out = tmp_path / "screen"
    rc = scanner_screen.main(
        ["--weights", str(tiny_weights), "--original", str(orig), "--seed", "3", "--scale", "0.04", "--out", str(out)]
    )
    assert rc == 0
    assert HOSPITALS[3] is shipped  # the patch is undone
    doc = json.loads((out / "screen.json").read_text())
    assert [a["arm"] for a in doc["arms"]] == names
    for arm in doc["arms"]:
        assert [r["task"] for r in arm["rows"]] == [DLM1, *SUBTYPES]
    # the "as shipped" arm is exactly the ordinary hospital-3 re-scan
    shipped_rows = doc["arms"][-1]["rows"]
    direct = scanner_shift(
        Cascade(WeightSet.load(tiny_weights)),
        read_cohort(orig),
        read_cohort(generate_cohorts(tmp_path / "h3", seed=3, scale=0.04, cohorts=["validation"], rescan_hospital=3)),
    )
    assert [r["auc_rescan"] for r in shipped_rows] == pytest.approx([r["auc_rescan"] for r in direct], nan_ok=True)
    # and the plain arm draws other images than the shipped one
    first = sorted((out / "arm0").rglob("*_gray.png"))[0]
    last = out / f"arm{len(names) - 1}" / first.relative_to(out / "arm0")
    a, b = np.asarray(Image.open(first)), np.asarray(Image.open(last))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_phantom_cli_refuses_an_unknown_rescan_hospital_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "softmass_core", "phantom", "--out", str(tmp_path / "x")]
        + ["--cohorts", "validation", "--rescan-hospital", "9"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: Unknown simulated hospital 9: use one of [1, 2, 3]."
    assert not (tmp_path / "x" / "cohort.csv").exists()
