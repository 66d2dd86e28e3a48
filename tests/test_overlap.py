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
