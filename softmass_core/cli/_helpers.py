"""What every command shares: the parser that fails in one line, JSON output, sizes, progress bars."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from softmass_core.errors import SoftmassError

#: Exit status of a command given bad input (argparse's own usage errors use it too).
EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def invoked_command(command: str) -> str | None:
    """``python -m softmass_core <command> ...`` as this process was started, or None if it was not."""
    argv = list(sys.argv)
    if len(argv) < 2 or argv[1] != command:
        return None
    return "python -m softmass_core " + shlex.join(argv[1:])


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout; NaN becomes null, numpy scalars and arrays plain numbers and lists."""
    from softmass_core.jsonsafe import nan_to_none

    print(json.dumps(nan_to_none(obj), indent=2, default=_json_default, allow_nan=False))


def parse_size(text: str) -> tuple[int, int]:
    """``--size WxH`` as (width, height); a :class:`SoftmassError` for bad text or a side under 32 pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SoftmassError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 470x280.") from None
    if w < 32 or h < 32:
        raise SoftmassError(f"--size {text!r}: both sides must be at least 32 pixels.")
    return w, h


class ProgressBar:
    """A tqdm bar on stderr behind a ``progress(done, total)`` callback (the engine's progress convention).

    The bar opens on the first call, so a command refused before its work
    draws nothing, and closes itself when ``done`` reaches ``total``.  With
    ``terminal_only`` (tqdm's ``disable=None``) it is drawn only when stderr
    is a terminal: piped or logged stderr gets no carriage-return lines, so an
    error stays the only line there.  With ``leave=False`` it clears its line
    when done, and :func:`close_progress_bars` clears it before an error.
    """

    def __init__(self, desc: str, *, unit: str = "case", leave: bool = False, terminal_only: bool = True) -> None:
        self.desc, self.unit, self.leave, self.terminal_only = desc, unit, leave, terminal_only
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=self.leave,
                disable=None if self.terminal_only else False,
            )  # fmt: skip
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()
        if done >= total:
            self._bar.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class StageBars:
    """``progress(stage, done, total)``: one bar per stage (e.g. each training epoch), drawn on stderr.

    A new stage closes the bar of the one before; each bar clears its line when done.
    """

    def __init__(self, unit: str = "it") -> None:
        self.unit = unit
        self._stage: str | None = None
        self._bar: ProgressBar | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            if self._bar is not None:
                self._bar.close()
            self._stage, self._bar = stage, ProgressBar(stage, unit=self.unit, terminal_only=False)
        self._bar(done, total)


def close_progress_bars() -> None:
    """Clear every tqdm bar still on the terminal, so that the next line on stderr starts on a clean line."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.leave = False  # a run that failed part-way leaves no half-drawn bar behind
        bar.close()
