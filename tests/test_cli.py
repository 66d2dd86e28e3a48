"""Command line: predict, evaluate, metrics; bad input gives one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from softmass_core.cli import main
from tests.conftest import ROOT, synthetic_rgb


@pytest.fixture
def images(tmp_path):
    g, c = tmp_path / "g.png", tmp_path / "c.png"
    Image.fromarray(synthetic_rgb(1)).save(g)
    Image.fromarray(synthetic_rgb(2)).save(c)
    return g, c


def test_predict_json(tiny_weights, images, capsys):
    g, c = images
    rc = main(["predict", "--weights", str(tiny_weights), "--gray", str(g), "--gray-roi", "10,10,150,110",
               "--cdfi", str(c), "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {"diagnosis", "p_malignant", "per_image_p_malignant", "sub_scores"} <= set(out)
    assert set(out["per_image_p_malignant"]) == {"gray", "cdfi"}
    assert out["rois"]["gray"] == "10,10,150,110"
    if out["malignant"]:
        assert out["sub_scores"] is None and out["diagnosis"] == "malignant"
    else:
        assert len(out["sub_scores"]) == 5


def test_predict_text_and_dlm1_only(tiny_weights_dlm1, images, capsys):
    rc = main(["predict", "--weights", str(tiny_weights_dlm1), "--gray", str(images[0]), "--threshold", "1.0"])
    out = capsys.readouterr().out
    assert rc == 0 and "diagnosis    benign" in out and "DLM-1 only" in out


def test_metrics_command_known_values(tmp_path, capsys):
    # 4 positives, 4 negatives, perfectly separated except one: AUC = 15/16
    p = tmp_path / "pred.csv"
    p.write_text(
        "label,score,other\n1,0.9,0.5\n1,0.8,0.4\n1,0.7,0.6\n1,0.3,0.2\n0,0.4,0.3\n0,0.2,0.7\n0,0.1,0.1\n0,0.05,0.8\n"
    )
    rc = main(["metrics", "--predictions", str(p), "--compare-col", "other", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["n"] == 8 and out["n_positive"] == 4
    assert out["counts"] == {"tp": 3, "fp": 0, "fn": 1, "tn": 4}
    assert out["metrics"]["auc"]["value"] == pytest.approx(15 / 16)
    assert out["metrics"]["sensitivity"]["value"] == pytest.approx(0.75)
    assert out["metrics"]["auc"]["method"] == "DeLong"
    assert set(out["comparison"]) == {"auc_difference", "ci_low", "ci_high", "z", "p_value", "method"}


def test_evaluate_command_json(tiny_weights, tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    for i, label in enumerate(["malignant", "lipoma", "malignant", "neurinoma", "lipoma", "hemangioma"]):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},validation,{label},{i}.png,,,")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    rc = main(["evaluate", "--weights", str(tiny_weights), "--cohort", str(tmp_path / "cohort.csv"),
               "--out", str(tmp_path / "out"), "--quiet", "--n-boot", "200", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    m = out["cohorts"]["validation"]
    assert m["dlm1"]["n"] == 6 and m["dlm1"]["n_positive"] == 2
    assert set(m["dlm2"]) == {"lipoma", "hemangioma", "neurinoma", "epidermal_cyst", "calcifying_epithelioma"}
    assert (tmp_path / "out" / "predictions.csv").is_file()
    # --device: the same evaluation on a device that is not there is one clear line, exit 2
    bad = "tpu" if torch.cuda.is_available() else "cuda"
    rc = main(["evaluate", "--weights", str(tiny_weights), "--cohort", str(tmp_path / "cohort.csv"), "--quiet",
               "--device", bad])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and ("no CUDA GPU is visible" in err or "Unknown device" in err)


@pytest.mark.slow
def test_evaluate_record_stores_metrics_per_cohort_in_the_manifest(tiny_weights, tmp_path, capsys):
    import shutil

    from softmass_core.weights.weight_set import WeightSet

    ws = tmp_path / "ws"
    shutil.copytree(tiny_weights, ws)
    rng = np.random.default_rng(1)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    labels = ["malignant", "lipoma", "malignant", "neurinoma", "lipoma", "hemangioma"]
    for cohort in ("validation", "test_b"):
        for i, label in enumerate(labels):
            name = f"{cohort}{i}.png"
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
            lines.append(f"{cohort}{i},{cohort},{label},{name},,,")
    csv_path = tmp_path / "cohort.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    base = ["evaluate", "--weights", str(ws), "--cohort", str(csv_path), "--quiet", "--n-boot", "100"]
    assert main([*base, "--cohorts", "validation", "--record"]) == 0
    first = json.loads((ws / "manifest.json").read_text())["metrics"]
    assert list(first["cohorts"]) == ["validation"]
    assert first["threshold_dlm1"] == WeightSet.load(ws).entry("dlm1").threshold
    assert "100 resamples" in first["ci_methods"]["f1"]
    # a second cohort is added beside the first; re-recording a cohort replaces it
    assert main([*base, "--cohorts", "test_b", "--record"]) == 0
    assert main([*base, "--cohorts", "validation", "--record"]) == 0
    manifest = json.loads((ws / "manifest.json").read_text())
    assert sorted(manifest["metrics"]["cohorts"]) == ["test_b", "validation"]
    assert manifest["metrics"]["cohorts"]["validation"] == first["cohorts"]["validation"]
    assert "external test B" in (ws / "README.md").read_text()  # the card names test_b for people
    assert WeightSet.load(ws).verified
    capsys.readouterr()
    # another operating point is refused instead of being stored as the set's own
    assert main([*base, "--threshold", "0.3", "--record"]) == 2
    assert "--record stores the weight set's own operating point" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_record_replicate_stores_a_fresh_sample_beside_the_recorded_tables(
    tiny_weights, tmp_path, capsys, monkeypatch
):
    import shutil

    from softmass_core.cohorts import evaluate as evaluate_module
    from softmass_core.data.phantom import generate_cohorts
    from softmass_core.weights.modelcard import update_manifest
    from softmass_core.weights.weight_set import WeightSet

    ws = tmp_path / "ws"
    shutil.copytree(tiny_weights, ws)
    first = generate_cohorts(tmp_path / "first", seed=3, scale=0.001, cohorts=["validation"])
    fresh = generate_cohorts(tmp_path / "fresh", seed=5, scale=0.001, cohorts=["validation"])
    common = ["--weights", str(ws), "--quiet", "--n-boot", "100"]
    assert main(["evaluate", *common, "--cohort", str(first), "--record"]) == 0
    recorded = json.loads((ws / "manifest.json").read_text())["metrics"]
    capsys.readouterr()
    assert main(["evaluate", *common, "--cohort", str(fresh), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["cohorts"]["validation"]

    args = ["evaluate", *common, "--cohort", str(fresh), "--record-replicate", "seed5"]
    monkeypatch.setattr(sys, "argv", ["softmass_core", *args])  # as started from a shell: the command is kept
    assert main(args) == 0
    assert "as replicate seed5" in capsys.readouterr().err
    manifest = json.loads((ws / "manifest.json").read_text())
    assert manifest["metrics"] == recorded  # the set's own tables are untouched
    rep = manifest["replicates"]["seed5"]
    assert rep["source"]["seed"] == 5 and rep["source"]["cohorts"] == {"validation": 6}
    assert rep["threshold_dlm1"] == recorded["threshold_dlm1"] and rep["fusion_rule"] == "mean"
    got = rep["cohorts"]["validation"]
    assert got["dlm1"]["n"] == 6 and got["dlm1"]["metrics"]["auc"] == plain["dlm1"]["metrics"]["auc"]
    assert got["dlm2"]["lipoma"]["metrics"]["auc"] == plain["dlm2"]["lipoma"]["metrics"]["auc"]
    assert "--record-replicate seed5" in rep["command"]
    card = (ws / "README.md").read_text()
    assert "## Larger independent samples (replicates)" in card and "### `seed5`" in card
    assert "6 simulated cases drawn afresh with `phantom --seed 5 --scale 0.001`" in card
    row = next(line for line in card.splitlines() if line.startswith("| DLM-1 (malignant) |") and "6 (1)" in line)
    ours = recorded["cohorts"]["validation"]["dlm1"]["metrics"]["auc"]
    assert f"{ours['value']:.3f}" in row.split("|")[2] and f"{got['dlm1']['metrics']['auc']['value']:.3f}" in row
    assert WeightSet.load(ws).verified

    # refused before any image is scored, one line and exit 2
    def no_scoring(*a, **k):
        raise AssertionError("scored a cohort that should have been refused")

    monkeypatch.setattr(evaluate_module, "predict_cohort", no_scoring)
    for extra, message in (
        (["--record-replicate", "seed 5"], "Replicate name 'seed 5' is not allowed"),
        (["--record-replicate", "seed5", "--record"], "Choose one: --record stores"),
        (["--record-replicate", "seed5", "--threshold", "0.3"], "--record-replicate stores the weight set's own"),
    ):
        assert main(["evaluate", *common, "--cohort", str(fresh), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    update_manifest(ws, lambda m: m.setdefault("training", {}).update(cohort_csv=str(fresh)))
    assert main(["evaluate", *common, "--cohort", str(fresh), "--record-replicate", "again"]) == 2
    assert "is the cohort CSV this set was trained and selected on" in capsys.readouterr().err
    # another folder drawn with the training cohorts' own seed repeats their cases
    same_seed = generate_cohorts(tmp_path / "same", seed=5, scale=0.001, cohorts=["test_b"])
    assert main(["evaluate", *common, "--cohort", str(same_seed), "--record-replicate", "again"]) == 2
    assert "was drawn with --seed 5, as were the cohorts this set was trained" in capsys.readouterr().err
    # ... also where the training folder is gone, from the generator's record kept in the manifest
    gone = {"cohort_csv": str(tmp_path / "gone" / "cohort.csv"), "source": {"generator": "softmass phantom", "seed": 5}}
    update_manifest(ws, lambda m: m.update(training=gone))
    assert main(["evaluate", *common, "--cohort", str(same_seed), "--record-replicate", "again"]) == 2
    assert "was drawn with --seed 5, as were the cohorts this set was trained" in capsys.readouterr().err
    assert list(json.loads((ws / "manifest.json").read_text())["replicates"]) == ["seed5"]


BAD_INPUTS = [
    ["predict", "--weights", "/nonexistent", "--gray", "x.png"],
    ["metrics", "--predictions", "/nonexistent.csv"],
    ["predict", "--weights", "WS"],
    ["predict", "--weights", "WS", "--gray", "NOTIMG"],
    ["predict", "--weights", "WS", "--gray", "IMG", "--gray-roi", "1,2"],
    ["predict", "--weights", "WS", "--gray", "IMG", "--gray-roi", "500,500,600,600"],
    ["evaluate", "--weights", "WS", "--cohort", "BADCSV"],
    ["metrics", "--predictions", "BADCSV", "--score-col", "nope"],
]


@pytest.fixture
def subst(tiny_weights, images, tmp_path):
    notimg = tmp_path / "n.png"
    notimg.write_text("hello")
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,cohort,label,gray_path\nx,v,sarcoma,nope.png\ny,v,lipoma,nope.png\n")
    return {"WS": str(tiny_weights), "IMG": str(images[0]), "NOTIMG": str(notimg), "BADCSV": str(bad)}


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_one_line_exit_2(args, subst, capsys):
    rc = main([subst.get(a, a) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err


@pytest.mark.parametrize(
    ("size", "message"),
    [("0x64", "both sides must be at least 32 pixels"), ("470by280", "write it as WIDTHxHEIGHT")],
)
def test_train_refuses_a_bad_size_before_reading_the_cohort(size, message, tmp_path, capsys):
    # the cohort does not exist: the size is what is refused, in one line, and nothing is written
    args = ["train", "--cohort", str(tmp_path / "none.csv"), "--out", str(tmp_path / "out"), "--id", "x"]
    assert main([*args, "--size", size, "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --size {size!r}: {message}" + (", e.g. 470x280.\n" if "WIDTH" in message else ".\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("args", [["predict", "--weights", "WS", "--gray", "NOTIMG"], ["predict"], ["nope"]])
def test_real_process_has_no_traceback(args, subst):
    proc = subprocess.run([sys.executable, "-m", "softmass_core", *[subst.get(a, a) for a in args]],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "error" in proc.stderr


@pytest.mark.parametrize(("extra", "work"), [([], "runs/mine"), (["--work-dir", "/tmp/w"], "/tmp/w")])
def test_ctrl_c_during_training_says_how_to_go_on(monkeypatch, capsys, extra, work):
    import softmass_core.cli.train as train_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "run", interrupted)
    code = main(["train", "--cohort", "c.csv", "--out", "o", "--id", "mine", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 130
    assert err == f"interrupted; finished epochs are kept in {work}: run the same command with --resume to go on"


@pytest.mark.parametrize(
    "args",
    [
        ["phantom", "--out", "FILE", "--scale", "0.05"],
        ["evaluate", "--weights", "WS", "--cohort", "BADCSV", "--out", "FILE"],
        ["train", "--cohort", "TINYCSV", "--out", "FILE", "--id", "x", "--work-dir", "WORK", "--data-kind", "test"],
        ["train", "--cohort", "TINYCSV", "--out", "OUT", "--id", "x", "--work-dir", "FILE", "--data-kind", "test"],
        ["busi-cohort", "--busi", "BUSI", "--out", "FILE"],
    ],
)
def test_an_output_path_that_is_a_file_is_refused_before_the_work(args, subst, tmp_path, capsys):
    from tests.test_train import _tiny_cohort

    (tmp_path / "cohort").mkdir()
    (tmp_path / "FILE").write_text("keep me")
    busi = tmp_path / "busi"
    (busi / "images").mkdir(parents=True)
    (busi / "labels.csv").write_text("image,label,dup_group\n")
    names = {"FILE": tmp_path / "FILE", "TINYCSV": _tiny_cohort(tmp_path / "cohort"), "WORK": tmp_path / "work",
             "OUT": tmp_path / "out", "BUSI": busi}  # fmt: skip
    rc = main([str(names.get(a, subst.get(a, a))) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"{tmp_path / 'FILE'} is a file, not a folder: pass a folder path." in err
    assert (tmp_path / "FILE").read_text() == "keep me"
    assert not (tmp_path / "work" / "train_state.json").exists() and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- stderr on bad input: one line


def _fake_dicom_file(tmp_path):
    from tests.test_images import fake_dicom

    path = tmp_path / "fake.dcm"
    path.write_bytes(fake_dicom())
    return path


@pytest.mark.slow
def test_fake_dicom_gives_exactly_one_stderr_line(tiny_weights, tmp_path):
    fake = _fake_dicom_file(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "softmass_core", "predict", "--weights", str(tiny_weights),
                           "--gray", str(fake)], capture_output=True, text=True, cwd=ROOT, timeout=180)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "could not be read as DICOM" in proc.stderr
    assert proc.stdout == ""


def _cohort_failing_part_way(tmp_path, n_good: int = 6):
    """A cohort whose last image has a good PNG header (so the CSV check passes) but truncated data."""
    rng = np.random.default_rng(0)
    lines = ["case_id,cohort,label,gray_path"]
    for i in range(n_good):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},validation,{'malignant' if i % 2 else 'lipoma'},{i}.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    lines.append("cut,validation,lipoma,cut.png")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "cohort.csv"


def _screen(raw: str) -> list[str]:
    """What a terminal shows for ``raw`` (carriage returns overwrite, newlines move down): non-empty rows."""
    rows: list[list[str]] = [[]]
    col = 0
    for ch in raw:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            rows.append([])
            col = 0
        else:
            assert ch == "\t" or ch.isprintable() or ord(ch) > 127, f"unexpected control character {ch!r}"
            row = rows[-1]
            row.extend(" " * (col + 1 - len(row)))
            row[col] = ch
            col += 1
    return [text for text in ("".join(r).rstrip() for r in rows) if text]


@pytest.mark.slow
def test_evaluate_failing_after_progress_leaves_no_half_line_on_a_terminal(tiny_weights, tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    cohort = _cohort_failing_part_way(tmp_path)
    master, slave = pty.openpty()
    # A 100-column terminal (a fresh pty is 0 x 0, and tqdm draws nothing in 0 columns).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "softmass_core", "evaluate", "--weights", str(tiny_weights),
                                 "--cohort", str(cohort), "--batch-size", "1", "--n-boot", "50"],
                                stdout=subprocess.PIPE, stderr=slave, cwd=ROOT)  # fmt: skip
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=180)
    finally:
        os.close(master)
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 2
    assert "evaluate:" in raw and "case" in raw  # the bar was drawn on the terminal before the failure
    shown = _screen(raw)
    assert len(shown) == 1 and shown[0].startswith("error: "), shown
    assert "cut.png" in shown[0]


@pytest.mark.slow
def test_evaluate_failing_after_progress_piped_stderr_is_one_line(tiny_weights, tmp_path):
    cohort = _cohort_failing_part_way(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "softmass_core", "evaluate", "--weights", str(tiny_weights),
                           "--cohort", str(cohort), "--batch-size", "1", "--n-boot", "50"],
                          capture_output=True, text=True, cwd=ROOT, timeout=180)  # fmt: skip
    assert proc.returncode == 2
    # Not a terminal: no bar at all (tqdm's disable=None), so no carriage-return remnants before the error.
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "\r" not in proc.stderr, proc.stderr


def test_evaluate_a_benign_malignant_cohort_with_a_full_cascade_set(tiny_weights, tmp_path, capsys):
    # Labels benign/malignant only: DLM-1 is measured and every sub-model is reported as not computable
    # (this exited 2 with "No cases: labels and scores are empty." before).
    rng = np.random.default_rng(1)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    for i, label in enumerate(["malignant", "benign", "benign", "malignant", "benign", "benign"]):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},validation,{label},{i}.png,,,")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    base = ["evaluate", "--weights", str(tiny_weights), "--cohort", str(tmp_path / "cohort.csv"), "--quiet",
            "--n-boot", "100"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "out"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["cohorts"]["validation"]
    assert m["dlm1"]["n"] == 6 and m["dlm1"]["computable"] is True
    assert {r["reason"] for r in m["dlm2"].values()} == {"no case of a known benign subtype in this cohort"}
    assert out["operating_point"].startswith("set's operating threshold")
    csv_text = (tmp_path / "out" / "metrics.csv").read_text()
    assert "no case of a known benign subtype in this cohort" in csv_text
    assert csv_text.splitlines()[0].endswith("threshold,operating_point,computable,note")
    assert (tmp_path / "out" / "predictions.csv").read_text().splitlines()[0].count("operating_point") == 1

    assert main([*base, "--threshold", "0.25"]) == 0
    text = capsys.readouterr().out
    assert "DLM-1 threshold 0.250: given on the command line (--threshold 0.25)" in text
    assert "lipoma                   n=0: not computable (no case of a known benign subtype in this cohort)" in text


@pytest.mark.slow
def test_bench_reports_concurrency_and_load_on_a_tiny_set(tiny_weights, capsys):
    """bench runs end to end (tiny set, few repeats) and reports every figure it promises, without timing asserts."""
    from softmass_core.bench import TARGETS, format_table, run_bench

    res = run_bench(
        weights=str(tiny_weights),
        repeats=1,
        eval_images=4,
        phantom_cases=0,
        concurrent=3,
        cold_start=False,
        occlusion=True,
    )
    keys = ("cascade_ratio", "gradcam_ratio", "eval_ratio", "concurrent_ratio", "concurrent_p95_s", "occlusion_ratio")
    for key in keys:
        assert res[key] > 0, key
    assert res["concurrent_cases"] == 3 and res["concurrent_batches"] >= 1
    assert res["concurrent_p50_s"] <= res["concurrent_p95_s"]
    assert len(res["load_average_before"]) == 3 and len(res["load_average_after"]) == 3
    assert "cold_start" not in res and res["meets_targets"]["cold_start_s"] is None
    assert set(res["meets_targets"]) == set(TARGETS)
    table = format_table(res)
    assert "concurrent_ratio" in table and "latency p50 / p95" in table and "load average before" in table
    assert "occlusion_ratio" in table and res["occlusion_forwards"] > 0


def test_bench_cold_start_is_skipped_with_a_note_without_chromium(monkeypatch):
    from softmass_core import bench

    monkeypatch.setattr(bench, "_chromium", lambda: None)
    res = bench.measure_cold_start()
    assert res == {"skipped": "Chromium not found (apt-get install chromium, or set SOFTMASS_CHROMIUM)"}
    table = bench.format_table(
        {
            "floor_forward_s": 1.0,
            "cascade_s": 1.0,
            "cascade_ratio": 1.0,
            "cascade_gradcam_s": 1.0,
            "gradcam_ratio": 1.0,
            "eval_images_per_s": 1.0,
            "eval_images": 2,
            "floor_images_per_s": 1.0,
            "eval_ratio": 1.0,
            "metrics_seconds": 0.1,
            "cold_start": res,
        }
    )
    assert "cold start" in table and "Chromium not found" in table


def test_bench_command_takes_the_concurrency_and_cold_start_options():
    from softmass_core.cli import build_parser

    args = build_parser().parse_args(["bench", "--concurrent", "0", "--no-cold-start"])
    assert args.concurrent == 0 and args.cold_start is False
    args = build_parser().parse_args(["bench"])
    assert args.concurrent == 20 and args.cold_start is True


def test_every_command_is_listed_and_a_broken_command_module_is_an_error_that_names_it(monkeypatch):
    import softmass_core.cli as cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["predict", "evaluate", "compare", "metrics", "bench", "phantom", "baseline",
                                 "busi-cohort", "train", "shift", "retune", "pack", "reader-study"]  # fmt: skip
    # a module that fails to import is not skipped: building the parser fails, naming the command and module
    monkeypatch.setitem(sys.modules, "softmass_core.cli.shift", None)  # import of it now raises ImportError
    with pytest.raises(
        cli.BrokenCommandError, match=r"'shift' command is broken: its module softmass_core\.cli\.shift"
    ):
        cli.build_parser()
    with pytest.raises(cli.BrokenCommandError):
        main(["metrics", "--predictions", "x.csv"])
