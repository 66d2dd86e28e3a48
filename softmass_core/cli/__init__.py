"""Command line: ``python -m softmass_core <command> ...``.

Commands: ``predict`` (one case), ``evaluate`` (a weight set on a cohort CSV), ``compare`` (two sets on one
cohort CSV),
``metrics`` (diagnostic metrics of a predictions CSV), ``bench`` (speed),
``phantom`` (simulated cohorts), ``baseline`` (histogram baseline),
``busi-cohort`` (a cohort from the BUSI set), ``train`` (a weight set from a
cohort CSV), ``shift`` (scanner shift on paired cases), ``retune`` (operating
thresholds and test-time augmentation of a weight set), ``pack`` (a weight
set from your own checkpoints), ``reader-study`` (the study administrator's
results).
Bad input prints one line on stderr and exits with status 2; there are no
tracebacks for expected errors.

This package is the only place that parses command lines.  Each command is a
module here with ``add_arguments(parser)`` and ``run(args) -> int``; it turns
options into plain arguments of the engine's functions and prints their
results.  A command module imports the engine inside ``run``, so that
building the parser (done for every command) loads no model code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from softmass_core.cli._helpers import EXIT_BAD_INPUT, Parser, close_progress_bars
from softmass_core.errors import SoftmassError

#: Command name -> its module in this package, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "predict": "predict",
    "evaluate": "evaluate",
    "compare": "compare",
    "metrics": "metrics",
    "bench": "bench",
    "phantom": "phantom",
    "baseline": "baseline",
    "busi-cohort": "busi_cohort",
    "train": "train",
    "shift": "shift",
    "retune": "retune",
    "pack": "pack",
    "reader-study": "reader_study",
}


class BrokenCommandError(ImportError):
    """A command's module cannot be imported or lacks ``add_arguments``/``run``: the installation is broken."""


def command_module(command: str) -> ModuleType:
    """The module of ``command``; :class:`BrokenCommandError` naming both when it fails to import."""
    name = f"{__name__}.{COMMANDS[command]}"
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any failure while importing it: the command cannot run
        raise BrokenCommandError(
            f"The '{command}' command is broken: its module {name} failed to import "
            f"({type(exc).__name__}: {exc}). Reinstall softmass's requirements or fix that module."
        ) from exc
    missing = [attr for attr in ("HELP", "add_arguments", "run") if not hasattr(module, attr)]
    if missing:
        raise BrokenCommandError(f"The '{command}' command is broken: its module {name} has no {', '.join(missing)}.")
    return module


def build_parser() -> Parser:
    """The parser of every command; :class:`BrokenCommandError` if any command's module is broken."""
    parser = Parser(prog="python -m softmass_core", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        module = command_module(command)
        p = sub.add_parser(command, help=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.run, interrupted_hint=getattr(module, "interrupted_hint", None))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SoftmassError as exc:
        close_progress_bars()
        # One line, whatever the message holds (cohort errors list several rows).
        text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        close_progress_bars()
        hint = args.interrupted_hint(args) if args.interrupted_hint else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
