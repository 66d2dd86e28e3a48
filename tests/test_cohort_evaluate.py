"""Cohort CSV validation and evaluation of a weight set over a cohort."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from softmass_core.cohorts.cohort import read_cohort
from softmass_core.cohorts.evaluate import evaluate
from softmass_core.errors import CohortError
from softmass_core.inference.cascade import Cascade
from softmass_core.labels import SUBTYPES
from softmass_core.weights.weight_set import WeightSet

HEADER = "case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi,age,sex"


def _images(root, names):
    rng = np.random.default_rng(3)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / name)


@pytest.fixture
def cohort_dir(tmp_path):
    labels = ["malignant", *SUBTYPES]
    names, lines = [], [HEADER]
    for cohort in ("validation", "test_a"):
        for i in range(2):
            for label in labels:
                cid = f"{cohort}-{label}-{i}"
                names += [f"{cid}_g.png", f"{cid}_c.png"]
                lines.append(f'{cid},{cohort},{label},{cid}_g.png,{cid}_c.png,"5,5,70,50",,{30 + i},{"MF"[i]}')
    _images(tmp_path, names)
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_read_valid_cohort(cohort_dir):
    c = read_cohort(cohort_dir / "cohort.csv")
    assert c.names == ["validation", "test_a"]
    assert len(c.rows) == 24
    r = c.rows[0]
    assert r.rois["gray"].as_string() == "5,5,70,50" and r.rois["cdfi"] is None
    assert r.age == 30 and r.sex == "M"
    assert len(c.subset(["test_a"]).rows) == 12


def test_every_bad_row_reported_at_once(tmp_path):
    _images(tmp_path, ["a.png"])
    (tmp_path / "outside.png").write_bytes(b"")
    lines = [
        HEADER,
        "c1,training,lipoma,a.png,,,,,",  # fine
        "c2,training,sarcoma,a.png,,,,,",  # unknown label
        "c3,training,lipoma,missing.png,,,,,",  # missing file
        'c4,training,lipoma,a.png,,"1,2,3",,,',  # bad ROI
        "c5,training,lipoma,../outside.png,,,,,",  # escapes
        "c6,training,lipoma,/etc/passwd,,,,,",  # absolute
        "c1,training,lipoma,a.png,,,,,",  # duplicate id
        "c8,training,lipoma,,,,,,",  # no image
        'c9,training,lipoma,a.png,,"500,500,600,600",,,',  # ROI outside the 80x60 image
        "c10,training,lipoma,a.png,,,,abc,X",  # bad age and sex
    ]
    (tmp_path / "sub").mkdir()
    csv_path = tmp_path / "cohort.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CohortError) as info:
        read_cohort(csv_path)
    msg = str(info.value)
    problems = info.value.problems
    for expected in (
        "line 3 (c2): unknown label 'sarcoma'",
        "line 4 (c3): gray_path: file 'missing.png' not found",
        "line 5 (c4): gray_roi",
        "line 6 (c5): gray_path: path '../outside.png' leaves the cohort folder",
        "line 7 (c6): gray_path: path '/etc/passwd' is absolute",
        "line 8 (c1): case_id 'c1' repeats line 2",
        "line 9 (c8): no image",
        "line 10 (c9): gray_roi 500,500,600,600 lies outside the 80x60 image",
        "line 11 (c10): age 'abc'",
        "line 11 (c10): sex 'X'",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert "problem(s)" in msg


def test_a_server_cohort_may_link_its_images_from_elsewhere_but_not_climb_out(tmp_path):
    from PIL import Image

    from softmass_core.cohorts.cohort import _safe_relative

    store = tmp_path / "readonly_dataset"
    store.mkdir()
    Image.new("RGB", (80, 60), (90, 90, 90)).save(store / "img.png")
    cohort_dir = tmp_path / "cohort"
    (cohort_dir / "images").mkdir(parents=True)
    (cohort_dir / "images" / "a.png").symlink_to(store / "img.png")
    (cohort_dir / "data").symlink_to(store, target_is_directory=True)
    csv_path = cohort_dir / "cohort.csv"
    csv_path.write_text(HEADER + "\nc1,test,lipoma,images/a.png,,,,,\nc2,test,malignant,data/img.png,,,,,\n")
    cohort = read_cohort(csv_path)
    assert [r.paths["gray"] for r in cohort.rows] == [store / "img.png", store / "img.png"]
    # written paths still may not climb out, and without following links the target must stay inside too
    assert "leaves the cohort folder" in _safe_relative("images/../../readonly_dataset/img.png", cohort_dir)[1]
    assert "link that leaves" in _safe_relative("images/a.png", cohort_dir, follow_links=False)[1]


def test_missing_columns_and_empty(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("case_id,label\nx,lipoma\n")
    with pytest.raises(CohortError, match=r"missing column\(s\) \['cohort'\]"):
        read_cohort(p)
    p.write_text("")
    with pytest.raises(CohortError, match="empty"):
        read_cohort(p)
    with pytest.raises(CohortError, match="does not exist"):
        read_cohort(tmp_path / "nope.csv")


def test_evaluate_tables_and_metrics(cohort_dir, tiny_weights, tmp_path):
    ws = WeightSet.load(tiny_weights)
    cascade = Cascade(ws)
    seen = []
    ev = evaluate(
        cascade, read_cohort(cohort_dir / "cohort.csv"), batch_size=5, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (0, 24) and seen[-1] == (24, 24)
    pred = ev.predictions
    assert len(pred) == 24 and set(pred["cohort"]) == {"validation", "test_a"}
    # fused score = mean of the two images, and each image score equals a single-case cascade run
    np.testing.assert_allclose(pred["p_malignant"], (pred["gray_dlm1"] + pred["cdfi_dlm1"]) / 2)
    row = read_cohort(cohort_dir / "cohort.csv").rows[3]
    from softmass_core.inference.cascade import CaseImages
    from softmass_core.io.images import load_image

    single = cascade.run(
        CaseImages(
            gray=load_image(row.paths["gray"]).rgb,
            cdfi=load_image(row.paths["cdfi"]).rgb,
            gray_roi=row.rois["gray"],
        ),
        run_all=True,
    )
    got = pred.set_index("case_id").loc[row.case_id]
    assert got["p_malignant"] == pytest.approx(single.p_malignant, abs=1e-6)
    assert got["diagnosis"] == single.diagnosis
    assert got["score_lipoma"] == pytest.approx(single.sub_scores["lipoma"], abs=1e-6)
    m = ev.metrics["validation"]
    assert m["dlm1"]["n"] == 12 and m["dlm1"]["n_positive"] == 2
    assert set(m["dlm2"]) == set(SUBTYPES)
    assert m["dlm2"]["lipoma"]["n"] == 10 and m["dlm2"]["lipoma"]["n_positive"] == 2
    assert ev.roc["validation"]["dlm1"]["fpr"][0] == 0.0
    files = ev.write(tmp_path / "out")
    data = json.loads(files["metrics_json"].read_text())  # strict JSON: no NaN/Infinity
    assert data["cohorts"]["test_a"]["dlm1"]["counts"].keys() == {"tp", "fp", "fn", "tn"}
    # The decision curve (issue 17) comes from the same predictions as predictions.csv, checked by hand at 0.3.
    curve = data["cohorts"]["validation"]["dlm1"]["decision_curve"]
    assert [r["threshold"] for r in curve] == [round(i / 100, 2) for i in range(1, 100)]
    val = pred[pred["cohort"] == "validation"]
    at = next(r for r in curve if r["threshold"] == 0.3)
    called, sick = val["p_malignant"] >= 0.3, val["y_malignant"] == 1
    n = len(val)
    assert at["net_benefit"] == pytest.approx(((called & sick).sum() - (called & ~sick).sum() * 0.3 / 0.7) / n)
    assert at["treat_all"] == pytest.approx(2 / 12 - 10 / 12 * 0.3 / 0.7)
    assert "decision_curve" not in ev.metrics["validation"]["dlm1"]  # not stored with the metrics
    table = ev.metrics_table()
    assert {"cohort", "task", "metric", "value", "ci_low", "ci_high"} <= set(table.columns)


def test_evaluate_reports_unreadable_image(cohort_dir, tiny_weights):
    (cohort_dir / "validation-lipoma-0_g.png").write_bytes(b"not a png")
    with pytest.raises(CohortError, match=r"validation-lipoma-0.*gray image"):
        evaluate(Cascade(WeightSet.load(tiny_weights)), read_cohort(cohort_dir / "cohort.csv"))


# --------------------------------------------------------------------------- one class per task


def _write_cohort(root, labels_by_cohort, *, seed=5):
    """A cohort CSV over synthetic images: {cohort: [label, ...]}."""
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for cohort, labels in labels_by_cohort.items():
        for i, label in enumerate(labels):
            cid = f"{cohort}-{i}"
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / f"{cid}_g.png")
            lines.append(f"{cid},{cohort},{label},{cid}_g.png,,,,{40 + i},{'MF'[i % 2]}")
    (root / "cohort.csv").write_text("\n".join(lines) + "\n")
    return root / "cohort.csv"


@pytest.fixture
def benign_malignant_csv(tmp_path):
    """Labels benign (subtype unknown) and malignant only, as many real cohorts are."""
    return _write_cohort(
        tmp_path,
        {
            "validation": ["malignant", "benign", "benign", "malignant", "benign", "benign", "benign", "malignant"],
            "test_a": ["benign", "malignant", "benign", "benign", "malignant", "benign"],
        },
    )


def test_benign_malignant_cohort_reports_dlm1_and_marks_every_sub_model_not_computable(
    benign_malignant_csv, tiny_weights, tmp_path
):
    # Before the fix this raised "No cases: labels and scores are empty." (the benign cases of known subtype).
    ev = evaluate(Cascade(WeightSet.load(tiny_weights)), read_cohort(benign_malignant_csv), n_boot=200)
    for cohort, (n, n_mal) in {"validation": (8, 3), "test_a": (6, 2)}.items():
        m = ev.metrics[cohort]
        assert (m["dlm1"]["n"], m["dlm1"]["n_positive"]) == (n, n_mal)
        assert m["dlm1"]["computable"] is True and m["dlm1"]["reason"] is None
        assert m["dlm1"]["metrics"]["auc"]["value"] is not None
        assert set(m["dlm2"]) == set(SUBTYPES)
        for subtype, result in m["dlm2"].items():
            assert result["computable"] is False, subtype
            assert result["reason"] == "no case of a known benign subtype in this cohort"
            assert result["n"] == 0 and all(e["value"] is None for e in result["metrics"].values())
            assert result["undefined"]["auc"] == result["reason"]
        assert ev.roc[cohort]["dlm2"]["lipoma"] is None and ev.roc[cohort]["dlm1"] is not None
        assert any("SM-1 (lipoma): not computable (no case of a known benign subtype" in w for w in m["warnings"])

    files = ev.write(tmp_path / "out")
    data = json.loads(files["metrics_json"].read_text())  # strict JSON
    lipoma = data["cohorts"]["validation"]["dlm2"]["lipoma"]
    assert lipoma["computable"] is False and "no case of a known benign subtype" in lipoma["reason"]
    import pandas as pd

    table = pd.read_csv(files["metrics_csv"], keep_default_na=False)
    sub = table[table["task"] == "lipoma"]
    assert len(sub) == 2 * 7 and not sub["computable"].astype(str).eq("True").any()
    assert set(sub["note"]) == {"no case of a known benign subtype in this cohort"}
    assert set(sub["value"]) == {""}
    dlm1 = table[table["task"] == "dlm1"]
    assert dlm1["computable"].astype(str).eq("True").all()
    assert dlm1.loc[dlm1["metric"] == "auc", "value"].ne("").all()
    assert (dlm1["value"].ne("") | dlm1["note"].ne("")).all()  # an empty value always says why


def test_a_task_with_one_class_says_which_class_is_missing(tmp_path, tiny_weights):
    csv_path = _write_cohort(
        tmp_path,
        {
            "lipomas": ["malignant", "lipoma", "lipoma", "malignant", "lipoma"],
            "malignant_only": ["malignant", "malignant", "malignant", "malignant"],
        },
    )
    ev = evaluate(Cascade(WeightSet.load(tiny_weights)), read_cohort(csv_path), n_boot=200)
    lip = ev.metrics["lipomas"]["dlm2"]
    assert lip["lipoma"]["reason"] == "only one class present: 3 lipoma, 0 other"
    assert lip["hemangioma"]["reason"] == "only one class present: 0 hemangioma, 3 other"
    assert lip["lipoma"]["metrics"]["sensitivity"]["value"] is not None  # what is defined is still given
    assert lip["lipoma"]["undefined"]["specificity"] == "no negative cases"
    assert ev.metrics["lipomas"]["dlm1"]["computable"] is True
    only = ev.metrics["malignant_only"]
    assert only["dlm1"]["computable"] is False
    assert only["dlm1"]["reason"] == "only one class present: 4 malignant, 0 benign"
    assert only["dlm1"]["metrics"]["auc"]["value"] is None
    assert only["dlm1"]["metrics"]["sensitivity"]["value"] is not None
    assert only["dlm2"]["lipoma"]["reason"] == "no case of a known benign subtype in this cohort"
    table = ev.metrics_table()
    auc = table[(table["cohort"] == "malignant_only") & (table["task"] == "dlm1") & (table["metric"] == "auc")]
    assert auc["note"].iloc[0] == "only one class present (4 positive, 0 negative)"


# --------------------------------------------------------------------------- threshold in every output


def test_predictions_and_metrics_state_their_threshold_and_operating_point(cohort_dir, tiny_weights, tmp_path):
    from softmass_core.cohorts.evaluate import predictions_at

    ws = WeightSet.load(tiny_weights)
    ev = evaluate(Cascade(ws), read_cohort(cohort_dir / "cohort.csv"), n_boot=100)
    own = ws.entry("dlm1")
    assert ev.operating_points["dlm1"] == f"set's operating threshold ({own.threshold_method})"
    assert set(ev.predictions["threshold"]) == {own.threshold}
    assert set(ev.predictions["operating_point"]) == {ev.operating_points["dlm1"]}
    table = ev.metrics_table()
    assert set(table.loc[table["task"] == "dlm1", "threshold"]) == {own.threshold}
    sm1 = ws.entry("sm1")
    assert set(table.loc[table["task"] == "lipoma", "threshold"]) == {sm1.threshold}

    # At another threshold every call follows it: 0 calls every case malignant, 1.01 none.
    moved = predictions_at(ev.predictions, 0.0, operating_point="chosen on this page")
    assert moved["pred_malignant"].eq(1).all() and moved["diagnosis"].eq("malignant").all()
    assert set(moved["threshold"]) == {0.0} and set(moved["operating_point"]) == {"chosen on this page"}
    none = predictions_at(ev.predictions, 1.01, operating_point="x")
    scores = ev.predictions[[f"score_{s}" for s in SUBTYPES]].to_numpy()
    assert list(none["diagnosis"]) == [SUBTYPES[i] for i in scores.argmax(axis=1)]
    # ... and at the set's own threshold it gives the cascade's own calls back.
    same = predictions_at(ev.predictions, own.threshold, operating_point=ev.operating_points["dlm1"])
    assert same["pred_malignant"].tolist() == ev.predictions["pred_malignant"].tolist()
    assert same["diagnosis"].tolist() == ev.predictions["diagnosis"].tolist()

    over = evaluate(Cascade(ws, threshold=0.3), read_cohort(cohort_dir / "cohort.csv"), n_boot=100,
                    operating_point="given on the command line (--threshold 0.3)")  # fmt: skip
    assert json.loads(json.dumps(over.metrics_json()))["operating_point"].startswith("given on the command line")
    assert set(over.metrics_table().query("task == 'dlm1'")["operating_point"]) == {
        "given on the command line (--threshold 0.3)"
    }


# --------------------------------------------------------------------------- evaluation cache on disk


class _ModelSpy:
    """Counts model forward passes (Cascade.probabilities) and can forbid them."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.forbid = False
        real = Cascade.probabilities

        def spy(cascade, *args, **kwargs):
            if self.forbid:
                raise AssertionError("a model was run although the evaluation is cached")
            self.calls += 1
            return real(cascade, *args, **kwargs)

        monkeypatch.setattr(Cascade, "probabilities", spy)


def test_cache_serves_the_second_call_without_running_a_model(cohort_dir, tiny_weights, tmp_path, monkeypatch):
    import pandas as pd

    from softmass_core.cohorts import evalcache

    spy = _ModelSpy(monkeypatch)
    cohort = read_cohort(cohort_dir / "cohort.csv")
    cache = tmp_path / "cache"
    first = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=100)
    assert first.source == "computed" and spy.calls > 0 and first.note == ""
    spy.forbid = True
    again = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), read_cohort(cohort.csv_path), cache,
                                      n_boot=100)  # fmt: skip
    assert again.source == "disk" and again.entry_id == first.entry_id
    pd.testing.assert_frame_equal(again.evaluation.predictions, first.evaluation.predictions)
    assert again.evaluation.metrics == json.loads(json.dumps(first.evaluation.metrics))
    assert again.evaluation.roc["validation"]["dlm1"]["thresholds"][0] == float("inf")
    assert again.evaluation.operating_points == first.evaluation.operating_points
    assert evalcache.load_entry(cache, first.entry_id).metrics == again.evaluation.metrics
    # Other settings are another entry.
    assert evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=100,
                                     lookup_only=True) is not None  # fmt: skip
    assert evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=50,
                                     lookup_only=True) is None  # fmt: skip
    assert evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights), threshold=0.3), cohort, cache,
                                     n_boot=100, lookup_only=True) is None  # fmt: skip


@pytest.mark.slow
def test_cache_recomputes_after_new_weights_a_changed_cohort_or_image(cohort_dir, tmp_path, monkeypatch):
    from softmass_core.cohorts import evalcache
    from tests.conftest import make_tiny_weight_set

    ws_dir = make_tiny_weight_set(tmp_path / "ws" / "tiny", seed=0)
    spy = _ModelSpy(monkeypatch)
    cache = tmp_path / "cache"
    csv_path = cohort_dir / "cohort.csv"

    def run():
        before = spy.calls
        res = evalcache.cached_evaluate(Cascade(WeightSet.load(ws_dir)), read_cohort(csv_path), cache, n_boot=50)
        return res, spy.calls > before

    first, ran = run()
    assert ran
    assert run()[1] is False
    # Other weight bytes (a new manifest sha256) -> recomputed, with other scores.
    make_tiny_weight_set(ws_dir, seed=1)
    second, ran = run()
    assert ran and second.entry_id != first.entry_id
    assert not np.allclose(second.evaluation.predictions["p_malignant"], first.evaluation.predictions["p_malignant"])
    assert run()[1] is False
    # A changed cohort CSV (one label) -> recomputed.
    text = csv_path.read_text()
    csv_path.write_text(text.replace("validation-lipoma-0,validation,lipoma", "validation-lipoma-0,validation,benign"))
    third, ran = run()
    assert ran and third.evaluation.predictions.set_index("case_id").loc["validation-lipoma-0", "label"] == "benign"
    # An image rewritten in place -> recomputed.
    assert run()[1] is False
    img = cohort_dir / "test_a-malignant-1_g.png"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(img)
    assert run()[1] is True


@pytest.mark.slow
def test_a_damaged_or_foreign_cache_entry_is_recomputed_never_served(cohort_dir, tiny_weights, tmp_path, monkeypatch):
    from softmass_core.cohorts import evalcache

    spy = _ModelSpy(monkeypatch)
    cache = tmp_path / "cache"
    cohort = read_cohort(cohort_dir / "cohort.csv")
    first = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=50)
    path = evalcache.entry_path(cache, first.entry_id)
    good = path.read_bytes()
    p_first = first.evaluation.predictions["p_malignant"].tolist()

    header, body = good.split(b"\n", 1)
    damaged = {
        "checksum mismatch": header + b"\n" + body.replace(b'"p_malignant"', b'"p_malignanX"', 1),
        "unreadable header": b"garbage\n" + body,
        "truncated": good[: len(good) // 2],
    }
    for what, data in damaged.items():
        path.write_bytes(data)
        calls = spy.calls
        res = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=50)
        assert res.source == "computed" and spy.calls > calls, what
        assert "damaged" in res.note or "checksum" in res.note, (what, res.note)
        assert res.evaluation.predictions["p_malignant"].tolist() == p_first
        assert path.read_bytes() != data  # replaced by a good entry
        assert evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=50,
                                         lookup_only=True) is not None  # fmt: skip
    # Another evaluation's entry copied under this name: its key differs, so it is not served.
    other = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort.subset(["test_a"]), cache,
                                      n_boot=50)  # fmt: skip
    path.write_bytes(evalcache.entry_path(cache, other.entry_id).read_bytes())
    res = evalcache.cached_evaluate(Cascade(WeightSet.load(tiny_weights)), cohort, cache, n_boot=50)
    assert res.source == "computed" and "other inputs" in res.note
    assert len(res.evaluation.predictions) == 24
    assert evalcache.load_entry(cache, "0" * 64) is None
    assert not list(cache.glob("*.tmp"))  # atomic writes leave no temporary file behind


def test_two_sessions_asking_at_once_run_the_models_once(cohort_dir, tiny_weights, tmp_path, monkeypatch):
    import threading
    import time

    from softmass_core.cohorts import evalcache
    from softmass_core.cohorts import evaluate as evaluate_module

    real = evaluate_module.evaluate
    runs = []
    started = threading.Event()

    def slow_evaluate(*args, **kwargs):
        runs.append(threading.current_thread().name)
        started.set()
        time.sleep(0.5)  # the second session arrives while the first one is still scoring
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", slow_evaluate)
    ws = WeightSet.load(tiny_weights)
    cohort = read_cohort(cohort_dir / "cohort.csv")
    results, waited = {}, []

    def session(name):
        if name == "second":
            started.wait(30)
        results[name] = evalcache.cached_evaluate(
            Cascade(ws), cohort, tmp_path / "cache", n_boot=50, on_wait=lambda: waited.append(name)
        )

    threads = [threading.Thread(target=session, args=(n,), name=n) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert runs == ["first"] and waited == ["second"]
    assert results["first"].source == "computed" and results["second"].source == "disk"
    assert results["first"].entry_id == results["second"].entry_id


def test_an_unwritable_cache_folder_still_evaluates_and_says_so(cohort_dir, tiny_weights, tmp_path):
    from softmass_core.cohorts import evalcache

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    res = evalcache.cached_evaluate(
        Cascade(WeightSet.load(tiny_weights)), read_cohort(cohort_dir / "cohort.csv"), blocker, n_boot=50
    )
    assert res.source == "computed" and "not stored" in res.note
    assert len(res.evaluation.predictions) == 24


def test_the_cache_key_covers_the_code_that_shapes_the_numbers_and_only_that(monkeypatch):
    from pathlib import Path

    from softmass_core.cohorts import evalcache

    root = Path(evalcache.__file__).parent.parent
    assert all((root / name).is_file() for name in evalcache.EVALUATION_MODULES)
    imported = {
        "cohorts/evaluate.py",
        "inference/cascade.py",
        "stats/binary.py",
        "stats/roc.py",
        "inference/tta.py",
        "io/roi.py",
        "io/images.py",
        "weights/models.py",
    }
    assert imported <= set(evalcache.EVALUATION_MODULES)
    assert "bench.py" not in evalcache.EVALUATION_MODULES  # editing the benchmark keeps every stored entry
