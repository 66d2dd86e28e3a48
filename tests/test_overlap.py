"""Training/test overlap: a set's recorded image digests found again in an evaluation cohort."""

from __future__ import annotations

import shutil

import pytest

from softmass_core.cohorts.cohort import read_cohort
from softmass_core.cohorts.overlap import cohort_overlap, overlap_sentence, read_digests, write_digests
from softmass_core.errors import WeightsError
from tests.test_train import _tiny_cohort


@pytest.fixture
def cohort_csv(tmp_path):
    (tmp_path / "c").mkdir()
    return _tiny_cohort(tmp_path / "c")


def test_a_cohort_made_of_training_images_is_not_independent(tmp_path, cohort_csv):
    cohort = read_cohort(cohort_csv)
    entry = write_digests(tmp_path, cohort, ["training"], "validation")
    n_train = sum(len(r.paths) for r in cohort.rows if r.cohort == "training")
    assert entry["n_training"] <= n_train and entry["n_validation"] > 0
    digests = read_digests(tmp_path, entry)
    # a new "test" cohort: two training images copied under new names, one fresh image
    test_dir = tmp_path / "t"
    test_dir.mkdir()
    train_rows = [r for r in cohort.rows if r.cohort == "training"]
    shutil.copy(train_rows[0].paths["gray"], test_dir / "renamed.png")
    shutil.copy(train_rows[1].paths["gray"], test_dir / "again.png")
    from PIL import Image

    Image.new("RGB", (64, 48), (7, 8, 9)).save(test_dir / "fresh.png")
    (test_dir / "cohort.csv").write_text(
        "case_id,cohort,label,gray_path\nt1,test,lipoma,renamed.png\nt2,test,malignant,again.png\n"
        "t3,test,lipoma,fresh.png\n"
    )
    per_cohort, seen = cohort_overlap(read_cohort(test_dir / "cohort.csv"), digests)
    assert per_cohort["test"] == {"n_images": 3, "n_cases": 3, "n_training": 2, "n_validation": 0,
                                  "n_cases_seen": 2, "independent": False}  # fmt: skip
    assert seen == {"t1": "training", "t2": "training"}
    assert "2 of its 3 images were training images" in overlap_sentence("test", per_cohort["test"])
    own, _ = cohort_overlap(cohort, digests)
    assert not own["validation"]["independent"] and own["validation"]["n_training"] == 0
    assert overlap_sentence("x", {"independent": True}) == ""


def test_a_damaged_digest_file_is_refused(tmp_path, cohort_csv):
    entry = write_digests(tmp_path, read_cohort(cohort_csv), ["training"], "validation")
    assert read_digests(tmp_path, None) is None
    (tmp_path / entry["file"]).write_text("training\t" + "0" * 64 + "\n")
    with pytest.raises(WeightsError, match="does not match its sha256"):
        read_digests(tmp_path, entry)


def test_evaluate_marks_the_cohorts_a_set_has_seen(tiny_weights, tmp_path, cohort_csv, capsys):
    import json

    from softmass_core.cli import main
    from softmass_core.weights.manifest import rewrite_manifest

    ws_dir = tmp_path / "ws"
    shutil.copytree(tiny_weights, ws_dir)
    cohort = read_cohort(cohort_csv)
    entry = write_digests(ws_dir, cohort, ["training"], "validation")
    rewrite_manifest(ws_dir, lambda raw: raw.setdefault("training", {}).update(image_digests=entry))
    rc = main(["evaluate", "--weights", str(ws_dir), "--cohort", str(cohort_csv), "--quiet", "--json",
               "--n-boot", "50", "--out", str(tmp_path / "out")])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0
    out = json.loads(captured.out)
    assert out["cohorts"]["training"]["overlap"]["independent"] is False
    assert out["cohorts"]["training"]["overlap"]["n_training"] == entry["n_training"]
    assert "warning: training: not independent" in captured.err
    predictions = (tmp_path / "out" / "predictions.csv").read_text()
    assert "seen_by_set" in predictions.splitlines()[0]
    # a set without digests says it cannot tell
    rc = main(["evaluate", "--weights", str(tiny_weights), "--cohort", str(cohort_csv), "--quiet", "--json",
               "--n-boot", "50"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)["cohorts"]["training"]["overlap"] is None
