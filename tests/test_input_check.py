"""Input check (issue 17, part 1): features from DLM-1's forward pass, plausibility checks, fitted statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from softmass_core.cli import main
from softmass_core.errors import WeightsError
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.input_check import MIN_SIDE, NOT_AVAILABLE, plausibility
from softmass_core.io.roi import Roi, prepare
from softmass_core.training.input_stats import TARGET_RATE, fit_input_check, limit_at, record_input_check
from softmass_core.weights.manifest import InputSpec
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import make_tiny_weight_set, synthetic_rgb


def _ultrasound_like(seed: int) -> np.ndarray:
    """The tiny test's "training domain": a bright blob in speckle, grayscale (like tests.conftest.synthetic_rgb)."""
    return synthetic_rgb(seed, width=120 + seed % 5 * 8, height=96 + seed % 3 * 8)


def _text_picture() -> np.ndarray:
    img = Image.new("RGB", (160, 120), "white")
    d = ImageDraw.Draw(img)
    for i in range(8):
        d.text((4, 4 + 14 * i), "The quick brown fox jumps over", fill="black")
    return np.asarray(img)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny DLM-1-only set whose input check is fitted on 120 training and 40 validation images."""
    root = tmp_path_factory.mktemp("ic")
    folder = make_tiny_weight_set(root / "set", with_dlm2=False, seed=3)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    for i in range(160):
        Image.fromarray(_ultrasound_like(100 + i)).save(root / f"{i}.png")
        cohort = "training" if i < 120 else "validation"
        lines.append(f"c{i},{cohort},{'malignant' if i % 3 == 0 else 'benign'},{i}.png,,,")
    (root / "cohort.csv").write_text("\n".join(lines) + "\n")
    block = fit_input_check(folder, root / "cohort.csv", train_cohorts=["training"], val_cohort="validation")
    assert block["fitted_on"]["n_train_images"] == {"gray": 120}
    return folder, root / "cohort.csv"


def test_flags_a_non_ultrasound_picture_and_passes_an_in_distribution_image(fitted):
    cascade = Cascade(WeightSet.load(fitted[0]))
    fresh = [cascade.run(CaseImages(gray=_ultrasound_like(500 + i))).input_check for i in range(10)]
    assert sum(c.out_of_distribution is False for c in fresh) >= 8  # the limit flags ~5 % of such images
    inside = next(c for c in fresh if c.out_of_distribution is False)
    assert (
        inside.images["gray"].score <= inside.images["gray"].threshold
        and "like the gray" in inside.images["gray"].reason
    )
    outside = cascade.run(CaseImages(gray=_text_picture())).input_check
    assert outside.out_of_distribution is True
    g = outside.images["gray"]
    assert g.score > g.threshold and "unlike the gray images" in g.reason  # the score flags it, not a plausibility rule


def test_threshold_flags_at_most_five_percent_of_validation(fitted):
    manifest = json.loads((fitted[0] / "manifest.json").read_text())
    block = manifest["input_check"]
    assert block["method"] == "mahalanobis" and block["target_rate"] == TARGET_RATE
    assert block["validation_flag_rate"]["gray"] <= TARGET_RATE
    scores = np.random.default_rng(0).normal(size=200)
    thr = limit_at(scores, [False] * 200)
    assert np.sum(scores > thr) == 10  # exactly 5 %: the lowest limit that flags no more
    bad = [i < 4 for i in range(200)]  # four ROIs already refused by a plausibility check count too
    thr2 = limit_at(scores, bad)
    assert np.sum((scores > thr2) | np.asarray(bad)) == 10


def test_plausibility_checks_blank_tiny_and_colour():
    spec = InputSpec(width=96, height=64)
    blank = np.full((100, 120, 3), 90, np.uint8)
    assert "blank" in plausibility(prepare(blank, None, spec), "gray", spec)
    tiny = synthetic_rgb(1)
    reason = plausibility(prepare(tiny, Roi(10, 10, 10 + MIN_SIDE - 1, 60), spec), "gray", spec)
    assert "smaller than" in reason
    colour = np.zeros((100, 120, 3), np.uint8)
    colour[:, :60] = (230, 20, 20)
    colour[:, 60:] = (20, 20, 230)
    assert "colour" in plausibility(prepare(colour, None, spec), "gray", spec)
    assert plausibility(prepare(colour, None, spec), "cdfi", spec) is None  # colour is expected in the CDFI slot
    assert plausibility(prepare(synthetic_rgb(2), None, spec), "gray", spec) is None


def test_plausibility_flags_even_without_statistics(tiny_weights_dlm1):
    cascade = Cascade(WeightSet.load(tiny_weights_dlm1))
    check = cascade.run(CaseImages(gray=np.zeros((8, 8, 3), np.uint8))).input_check
    assert check.out_of_distribution is True and "smaller than" in check.images["gray"].reason


def test_stats_file_sha256_mismatch_is_refused(fitted, tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(fitted[0], folder)
    path = folder / "input_check.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        WeightSet.load(folder)


def test_set_without_statistics_says_not_available(tiny_weights_dlm1, tmp_path, capsys):
    Image.fromarray(synthetic_rgb(4)).save(tmp_path / "g.png")
    assert main(["predict", "--weights", str(tiny_weights_dlm1), "--gray", str(tmp_path / "g.png"), "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["input_check"]
    assert check["out_of_distribution"] is None
    assert check["images"]["gray"]["reason"] == NOT_AVAILABLE
    assert main(["predict", "--weights", str(tiny_weights_dlm1), "--gray", str(tmp_path / "g.png")]) == 0
    assert NOT_AVAILABLE in capsys.readouterr().out


def test_predict_json_keys(fitted, tmp_path, capsys):
    Image.fromarray(_text_picture()).save(tmp_path / "t.png")
    assert main(["predict", "--weights", str(fitted[0]), "--gray", str(tmp_path / "t.png"), "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["input_check"]
    assert check["out_of_distribution"] is True
    assert set(check["images"]) == {"gray"}
    assert set(check["images"]["gray"]) == {"score", "threshold", "out_of_distribution", "reason"}
    assert check["images"]["gray"]["out_of_distribution"] is True


def test_evaluate_column_and_cohort_rate(fitted, tmp_path, capsys):
    folder, csv = fitted
    Image.fromarray(_text_picture()).save(csv.parent / "odd.png")
    odd = csv.parent / "odd.csv"
    odd.write_text(csv.read_text().splitlines()[0] + "\nodd1,odd,benign,odd.png,,,\nfine1,odd,benign,7.png,,,\n")
    rc = main(["evaluate", "--weights", str(folder), "--cohort", str(odd), "--out", str(tmp_path / "out"),
               "--quiet", "--n-boot", "50", "--json"])  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cohorts"]["odd"]["input_check"] == {"n_flagged": 1, "n": 2, "rate": 0.5}
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("case_id")
    assert bool(pred.loc["odd1", "out_of_distribution"]) and not bool(pred.loc["fine1", "out_of_distribution"])


def test_retune_fits_the_input_check(tmp_path, fitted):
    folder = make_tiny_weight_set(tmp_path / "set", with_dlm2=False, seed=3)
    assert main(["retune", "--weights", str(folder), "--cohort", str(fitted[1]), "--quiet", "--n-boot", "50",
                 "--input-check-train", "training"]) == 0  # fmt: skip
    ws = WeightSet.load(folder)
    assert ws.input_stats is not None and "gray" in ws.input_stats.threshold
    assert "Input check (unlike the training data)" in (folder / "README.md").read_text()


def record_always_flagging(folder: Path) -> None:
    """Statistics whose limit (0) every image exceeds: the case is always flagged."""
    d = 48  # test_convnext: 24 first-stage channels, mean and standard deviation
    tensors = {
        f"{m}.{k}": (np.zeros(d) if k == "mean" else np.eye(d)) for m in ("gray", "cdfi") for k in ("mean", "precision")
    }
    record_input_check(folder, tensors, {"method": "mahalanobis", "threshold": {"gray": 0.0, "cdfi": 0.0}})


def test_case_page_shows_the_warning_above_a_greyed_verdict(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "weights"
    record_always_flagging(make_tiny_weight_set(root / "tiny", with_dlm2=False))
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTMASS_READER_DB", f"sqlite:///{tmp_path / 'reader.sqlite'}")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "1_case.py"), default_timeout=120)
    at.run()
    at.selectbox(key="case.demo_case").set_value("demo-lipoma-1").run()
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception
    order = [(n.type, str(getattr(n, "value", ""))) for n in at.main if n.type in ("alert", "markdown", "error")]
    warn = [i for i, (_, v) in enumerate(order) if "unlike the images this weight set learned" in v]
    verdict = [i for i, (_, v) in enumerate(order) if "Diagnosis:" in v]
    assert warn and verdict and warn[0] < verdict[0], order
    assert "score" in order[warn[0]][1] and "limit 0.0" in order[warn[0]][1]
    assert "The result below is not meaningful." in order[warn[0]][1]
    assert order[verdict[0]][1].startswith(":gray[")  # greyed, not a success/error box
