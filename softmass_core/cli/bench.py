"""``bench``: speed of the cascade, Grad-CAM, evaluation, the generator, concurrency and cold start here."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import parse_size, print_json

HELP = "speed benchmarks on this machine"


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--occlusion", action="store_true", help="also time DLM-1's occlusion map (seconds per image)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
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
        occlusion=args.occlusion,
    )
    if args.json:
        print_json(res)
    else:
        print(format_table(res))
    return 0
