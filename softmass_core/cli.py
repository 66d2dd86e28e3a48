"""Command line: ``python -m softmass_core <command> ...``.

Commands: ``predict`` (one case), ``evaluate`` (a weight set on a cohort CSV),
``metrics`` (diagnostic metrics of a predictions CSV), ``bench`` (speed),
``phantom`` (simulated cohorts), ``baseline`` (histogram baseline), ``train``
(a weight set from a cohort CSV), ``shift`` (scanner shift on paired cases),
``retune`` (operating thresholds and test-time augmentation of a weight set).
Bad input prints one line on stderr and exits with status 2; there are no
tracebacks for expected errors.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from softmass_core.errors import SoftmassError
from softmass_core.paths import make_dir

EXIT_BAD_INPUT = 2

# Commands whose parser and handler live in their own module:
# module.add_arguments(parser) and module.run_cli(args) -> int.
_MODULE_COMMANDS = {
    "phantom": ("softmass_core.phantom", "generate simulated cohorts (gray + CDFI, three hospitals)"),
    "baseline": ("softmass_core.baseline", "histogram + logistic-regression baseline on a cohort CSV"),
    "busi-cohort": ("softmass_core.busi", "cohort CSV from the public BUSI breast-ultrasound set"),
    "train": ("softmass_core.train", "train a weight set (DLM-1 and optionally DLM-2) from a cohort CSV"),
    "shift": ("softmass_core.shift", "scanner shift on identical lesions: paired AUCs of a cohort and its rescan"),
    "retune": (
        "softmass_core.retune",
        "re-choose a weight set's thresholds (and test-time augmentation) on validation",
    ),
    "reader-study": (
        "softmass_core.study",
        "the study administrator's results of a reader-study database (summary, CSVs) or a reader's new PIN",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def invoked_command(command: str) -> str | None:
    """``python -m softmass_core <command> ...`` as this process was started, or None if it was not."""
    argv = list(sys.argv)
    if len(argv) < 2 or argv[1] != command:
        return None
    import shlex

    return "python -m softmass_core " + shlex.join(argv[1:])


def print_json(obj: Any) -> None:
    from softmass_core.jsonsafe import nan_to_none

    print(json.dumps(nan_to_none(obj), indent=2, default=_json_default, allow_nan=False))


def _progress_bar(desc: str):
    """A tqdm-backed ``progress(done, total)`` callback writing to stderr.

    The bar is drawn only when stderr is a terminal (tqdm's ``disable=None``):
    piped or logged stderr gets no carriage-return lines, so an error stays the
    only line there.  On a terminal the bar clears its line when done
    (``leave=False``), and :func:`main` clears it before printing an error.
    """
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit="case", file=sys.stderr, leave=False, disable=None)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _close_progress_bars() -> None:
    """Clear every tqdm bar still on the terminal, so that the next line on stderr starts on a clean line."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.leave = False  # a run that failed part-way leaves no half-drawn bar behind
        bar.close()


# --------------------------------------------------------------------------- predict


def _cmd_predict(args: argparse.Namespace) -> int:
    from softmass_core.cascade import Cascade, CaseImages
    from softmass_core.images import load_image
    from softmass_core.roi import parse_roi
    from softmass_core.weights import WeightSet

    if not args.gray and not args.cdfi:
        raise SoftmassError("Give --gray IMG and/or --cdfi IMG.")
    ws = WeightSet.load(args.weights)
    cascade = Cascade(ws, fusion_rule=args.fusion, threshold=args.threshold)
    gray = load_image(args.gray).rgb if args.gray else None
    cdfi = load_image(args.cdfi).rgb if args.cdfi else None
    case = CaseImages(gray=gray, cdfi=cdfi, gray_roi=parse_roi(args.gray_roi), cdfi_roi=parse_roi(args.cdfi_roi))
    result = cascade.run(case, run_all=args.all)
    out = result.to_dict()
    if args.json:
        print_json(out)
        return 0
    print(f"weight set   {ws.id} {ws.version}")
    for m, p in out["per_image_p_malignant"].items():
        print(f"P(malignant) {m:<5} {p:.3f}")
    print(f"P(malignant) fused {out['p_malignant']:.3f} ({out['fusion_rule']}), threshold {out['threshold']:.3f}")
    if out["sub_scores"]:
        for subtype, s in out["sub_scores"].items():
            print(f"  {subtype:<24} {s:.3f}")
    print(f"diagnosis    {out['diagnosis']}")
    print(f"path         {out['stopped_because']}")
    return 0


# --------------------------------------------------------------------------- evaluate


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from softmass_core.cascade import Cascade
    from softmass_core.cohort import read_cohort
    from softmass_core.evaluate import check_replicate, evaluate, record_metrics, record_replicate
    from softmass_core.weights import WeightSet

    if args.record and args.record_replicate:
        raise SoftmassError(
            "Choose one: --record stores the set's own tables, --record-replicate KEY an independent sample beside them."
        )
    flag = "--record" if args.record else "--record-replicate" if args.record_replicate else None
    if flag and (args.fusion or args.threshold is not None):
        raise SoftmassError(
            f"{flag} stores the weight set's own operating point: drop --fusion and --threshold, "
            f"or evaluate without {flag}."
        )
    if args.out:
        make_dir(args.out, "--out")  # before the cohort is scored, not after
    ws = WeightSet.load(args.weights)
    if args.record_replicate:
        check_replicate(args.weights, args.record_replicate, args.cohort)  # before the cohort is scored
    cohort = read_cohort(args.cohort).subset(args.cohorts.split(",") if args.cohorts else None)
    cascade = Cascade(ws, fusion_rule=args.fusion, threshold=args.threshold, device=args.device)
    progress = None if args.quiet else _progress_bar("evaluate")
    point = None if args.threshold is None else f"given on the command line (--threshold {args.threshold:g})"
    ev = evaluate(
        cascade, cohort, batch_size=args.batch_size, progress=progress, n_boot=args.n_boot, seed=args.seed,
        operating_point=point,
    )  # fmt: skip
    if args.record:
        record_metrics(args.weights, ev, n_boot=args.n_boot, seed=args.seed)
        print(f"recorded {', '.join(ev.metrics)} in {args.weights}/manifest.json and README.md", file=sys.stderr)
    if args.record_replicate:
        record_replicate(
            args.weights, args.record_replicate, ev, cohort_csv=args.cohort, n_boot=args.n_boot, seed=args.seed,
            command=invoked_command("evaluate"),
        )  # fmt: skip
        print(
            f"recorded {', '.join(ev.metrics)} as replicate {args.record_replicate} in {args.weights}/manifest.json "
            "and README.md",
            file=sys.stderr,
        )
    if args.out:
        files = ev.write(args.out)
        print(f"wrote {', '.join(str(p) for p in files.values())}", file=sys.stderr)
    if args.json:
        print_json(ev.metrics_json())
        return 0
    table = ev.metrics_table()
    print(f"DLM-1 threshold {ev.threshold:.3f}: {ev.operating_points.get('dlm1', '')}")
    for cohort_name, df in table.groupby("cohort", sort=False):
        print(f"\n== {cohort_name} ==")
        for task, dt in df.groupby("task", sort=False):
            n, npos = int(dt["n"].iloc[0]), int(dt["n_positive"].iloc[0])
            if not bool(dt["computable"].iloc[0]):
                reason = ev.metrics[cohort_name][task]["reason"] if task == "dlm1" else (
                    ev.metrics[cohort_name]["dlm2"][task]["reason"]
                )  # fmt: skip
                if n == 0:
                    print(f"{task:<24} n=0: not computable ({reason})")
                    continue
                print(f"{task:<24} not computable ({reason}); what is defined:")
            parts = []
            for _, r in dt.iterrows():
                if r["value"] is None or (isinstance(r["value"], float) and math.isnan(r["value"])):
                    parts.append(f"{r['metric']} n/a")
                else:
                    parts.append(f"{r['metric']} {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
            print(f"{task:<24} n={n} pos={npos}: " + "; ".join(parts))
    return 0


# --------------------------------------------------------------------------- metrics


def _cmd_metrics(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from softmass_core.stats.binary import binary_metrics
    from softmass_core.stats.roc import delong_test

    try:
        df = pd.read_csv(args.predictions)
    except FileNotFoundError:
        raise SoftmassError(f"{args.predictions} does not exist.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SoftmassError(f"{args.predictions} is not a readable CSV ({exc}).") from None
    cols = [args.label_col, args.score_col] + ([args.compare_col] if args.compare_col else [])
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SoftmassError(f"{args.predictions}: no column(s) {missing}; it has {list(df.columns)}.")
    labels = df[args.label_col].to_numpy()
    scores = pd.to_numeric(df[args.score_col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(scores).any():
        bad = int(np.flatnonzero(np.isnan(scores))[0]) + 2
        raise SoftmassError(f"{args.predictions}: column {args.score_col!r} has a non-number at line {bad}.")
    out = binary_metrics(labels, scores, threshold=args.threshold, n_boot=args.n_boot, seed=args.seed)
    if args.compare_col:
        other = pd.to_numeric(df[args.compare_col], errors="coerce").to_numpy(dtype=float)
        if np.isnan(other).any():
            raise SoftmassError(f"{args.predictions}: column {args.compare_col!r} has non-numbers.")
        cmp = delong_test(labels, scores, other)
        out["comparison"] = {
            k: cmp[k] for k in ("auc_difference", "ci_low", "ci_high", "z", "p_value", "method") if k in cmp
        }
    if args.json:
        print_json(out)
        return 0
    print(f"n={out['n']} positives={out['n_positive']} threshold={out['threshold']}")
    print("counts " + " ".join(f"{k}={v}" for k, v in out["counts"].items()))
    for name, est in out["metrics"].items():
        if est["value"] is None:
            print(f"{name:<12} n/a")
        else:
            print(f"{name:<12} {est['value']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}] ({est['method']})")
    if "comparison" in out:
        c = out["comparison"]
        print(
            f"AUC difference {c['auc_difference']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}], "
            f"z={c['z']:.2f}, p={c['p_value']:.4f} ({c['method']})"
        )
    return 0


# --------------------------------------------------------------------------- bench


def parse_size(text: str) -> tuple[int, int]:
    """``--size WxH`` as (width, height); a :class:`SoftmassError` for bad text or a side under 32 pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SoftmassError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 470x280.") from None
    if w < 32 or h < 32:
        raise SoftmassError(f"--size {text!r}: both sides must be at least 32 pixels.")
    return w, h


def _cmd_bench(args: argparse.Namespace) -> int:
    from softmass_core.bench import format_table, run_bench

    res = run_bench(
        weights=args.weights,
        arch=args.arch,
        random_weights=args.random,
        size=parse_size(args.size),
        repeats=args.repeats,
        eval_images=args.eval_images,
        phantom_cases=args.phantom_cases,
        concurrent=args.concurrent,
        cold_start=args.cold_start,
    )
    if args.json:
        print_json(res)
    else:
        print(format_table(res))
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m softmass_core", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("predict", help="run the DLM cascade on one case")
    p.add_argument("--weights", required=True, help="weight-set folder (holds manifest.json)")
    p.add_argument("--gray", help="grayscale B-mode image (PNG, JPEG, BMP, TIFF, DICOM)")
    p.add_argument("--gray-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--cdfi", help="colour Doppler image")
    p.add_argument("--cdfi-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--fusion", choices=("mean", "max", "gray", "cdfi"), help="override the manifest's fusion rule")
    p.add_argument("--threshold", type=float, help="override DLM-1's operating threshold")
    p.add_argument("--all", action="store_true", help="run every model whatever DLM-1 says")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="evaluate a weight set on a cohort CSV")
    p.add_argument("--weights", required=True)
    p.add_argument("--cohort", required=True, help="cohort CSV (see README)")
    p.add_argument("--cohorts", help="comma-separated cohort names to keep (default: all)")
    p.add_argument("--out", help="folder for predictions.csv, metrics.json, metrics.csv")
    p.add_argument("--fusion", choices=("mean", "max", "gray", "cdfi"))
    p.add_argument("--threshold", type=float)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the models run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--record",
        action="store_true",
        help="also store the metrics in the weight set's manifest and model card (replacing those of the same "
        "cohorts); the weight files and their sha256 are untouched",
    )
    p.add_argument(
        "--record-replicate",
        metavar="KEY",
        help="store the metrics as an independent replicate (manifest replicates.KEY, its own model-card section) "
        "beside the set's tables instead of replacing them: for a fresh sample of cohorts the set was already "
        "measured on, e.g. phantom --seed 7 --scale 5",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("metrics", help="diagnostic metrics with 95%% CIs from a predictions CSV")
    p.add_argument("--predictions", required=True)
    p.add_argument("--label-col", default="label", help="0/1 labels (1 = positive)")
    p.add_argument("--score-col", default="score")
    p.add_argument("--compare-col", help="second score column: paired DeLong test against --score-col")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_metrics)

    p = sub.add_parser("bench", help="speed benchmarks on this machine")
    p.add_argument("--weights", help="weight set to time (default: a fresh model of --arch with random weights)")
    p.add_argument("--arch", default="convnext_atto", help="timm ConvNeXt name for --random")
    p.add_argument("--random", action="store_true", help="time random weights of --arch at --size instead of a set")
    p.add_argument("--size", default="470x280", help="model input WxH for --random (the paper: 470x280)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--eval-images", type=int, default=64)
    p.add_argument(
        "--phantom-cases", type=int, default=12, help="cases per hospital for the generator timing (0 = skip)"
    )
    p.add_argument("--concurrent", type=int, default=20, help="cases submitted at once for concurrent_ratio (0 = skip)")
    p.add_argument(
        "--no-cold-start",
        dest="cold_start",
        action="store_false",
        help="skip cold_start_s (streamlit run app.py to the first diagnosis, in headless Chromium)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)

    for name, (module_name, help_text) in _MODULE_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if not hasattr(module, "add_arguments"):
            continue
        p = sub.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(func=module.run_cli)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SoftmassError as exc:
        _close_progress_bars()
        # One line, whatever the message holds (cohort errors list several rows).
        text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _close_progress_bars()
        hint = ""
        if getattr(args, "command", None) == "train":
            from softmass_core.train import work_dir_for

            work = work_dir_for(args.id, args.work_dir)
            hint = f"; finished epochs are kept in {work}: run the same command with --resume to go on"
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
