"""Where the Cohort page's data comes from, and the evaluations it keeps.

* :func:`resolve_server_csv`: a cohort CSV from a path typed by the user
  (the CSV itself, or a folder holding ``cohort.csv`` or exactly one CSV);
* :func:`extract_upload`: an uploaded zip, extracted once per content into
  ``CACHE_ROOT/uploads/<sha256>`` by :func:`softmass_core.cohort_zip.extract_cohort_zip`;
* :func:`progress_reporter`: a core ``progress`` callback that drives an
  ``st.progress`` bar;
* :func:`cached_evaluation`: ``evaluate`` once per (weight set id + version,
  cohort CSV path + modification time, cohorts), kept in the session.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from softmass_core.cascade import Cascade
from softmass_core.cohort import Cohort
from softmass_core.cohort_zip import extract_cohort_zip
from softmass_core.errors import CohortError
from softmass_core.evaluate import Evaluation, evaluate
from softmass_core.weights import WeightSet
from ui import common

#: Session-state key of the evaluations this session computed (an OrderedDict, newest last).
KEY_EVALUATIONS = "softmass.cohort.evaluations"
#: How many evaluations a session keeps.
MAX_EVALUATIONS = 6

EvalKey = tuple[Any, ...]  # see evaluation_key


def resolve_server_csv(text: str) -> Path:
    """The cohort CSV named by ``text``: a CSV file, or a folder with ``cohort.csv`` (or one CSV)."""
    text = (text or "").strip().strip('"').strip("'")
    if not text:
        raise CohortError("Type the path of a cohort CSV, or of a folder that holds cohort.csv.")
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        if (path / "cohort.csv").is_file():
            return (path / "cohort.csv").resolve()
        found = sorted(path.glob("*.csv"))
        if len(found) == 1:
            return found[0].resolve()
        what = "no CSV file" if not found else f"{len(found)} CSV files and no cohort.csv"
        raise CohortError(f"The folder {path} holds {what}; give the path of the cohort CSV itself.")
    raise CohortError(f"{path} does not exist on the server. Check the path (it is read on the server, not your PC).")


def extract_upload(data: bytes, root: Path, name: str | None = None) -> Path:
    """Extract an uploaded cohort zip under ``root`` once per content; return its CSV's path.

    The folder is named by the zip's SHA-256, so uploading the same zip again
    (or rerunning the page) reuses it; extraction goes to a temporary folder
    that is renamed into place only when complete.  ``name`` (the zip's file
    name as uploaded) is kept in the session, so that error boxes name files
    as ``cohort.csv in NAME`` instead of their server path.
    """
    digest = hashlib.sha256(data).hexdigest()[:24]
    final = root / digest
    if name:
        st.session_state.setdefault(common.KEY_UPLOAD_NAMES, {})[str(final)] = name
    if not final.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{digest}.{uuid.uuid4().hex}.tmp"
        try:
            extract_cohort_zip(data, tmp)
            try:
                tmp.rename(final)
            except OSError:
                if not final.is_dir():  # not a concurrent upload of the same zip
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    csvs = [p for p in final.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"]
    if len(csvs) != 1:
        raise CohortError(f"The extracted upload {final} should hold exactly one CSV; found {len(csvs)}.")
    return csvs[0]


def progress_reporter(bar: Any, what: str) -> Callable[..., None]:
    """A ``progress`` callback for the core that updates ``bar`` (an ``st.progress``).

    Accepts ``(done, total)``, ``(done, total, message)`` or one fraction in [0, 1].
    """

    def report(*args: Any, **_: Any) -> None:
        text = what
        if len(args) >= 2 and all(isinstance(a, (int, float)) for a in args[:2]):
            done, total = float(args[0]), float(args[1])
            fraction = done / total if total > 0 else 1.0
            text = f"{what}: {int(done)} / {int(total)}"
            if len(args) >= 3 and isinstance(args[2], str):
                text += f" ({args[2]})"
        elif args and isinstance(args[0], (int, float)):
            fraction = float(args[0])
        else:
            return
        bar.progress(min(max(fraction, 0.0), 1.0), text=text)

    return report


def evaluation_key(ws: WeightSet, cohort: Cohort, cohorts: Sequence[str]) -> EvalKey:
    """Cache key: weight set id, version, folder and operating settings (test-time views, thresholds);
    cohort CSV path and mtime; cohorts evaluated.  A set retuned in place is evaluated afresh."""
    path = Path(cohort.csv_path).resolve()
    settings = (ws.manifest.tta, tuple((m, e.threshold, e.sha256) for m, e in ws.manifest.models.items()))
    return (ws.id, ws.version, str(ws.folder), settings, str(path), path.stat().st_mtime_ns, tuple(cohorts))


def cached_evaluation(key: EvalKey) -> Evaluation | None:
    """The evaluation kept for ``key`` in this session, if any."""
    store: OrderedDict = st.session_state.get(KEY_EVALUATIONS) or OrderedDict()
    return store.get(key)


def cached_evaluate(ws: WeightSet, cohort: Cohort, cohorts: Sequence[str], *, label: str) -> Evaluation:
    """Evaluate ``ws`` on ``cohort`` (restricted to ``cohorts``) with a progress bar, once per key."""
    key = evaluation_key(ws, cohort, cohorts)
    found = cached_evaluation(key)
    if found is not None:
        return found
    subset = cohort.subset(list(cohorts))
    bar = st.progress(0.0, text=f"Evaluating {label} on {len(subset.rows)} cases ...")
    result = evaluate(Cascade(ws), subset, progress=progress_reporter(bar, f"Evaluating {label}"))
    bar.empty()
    store: OrderedDict = st.session_state.get(KEY_EVALUATIONS) or OrderedDict()
    store[key] = result
    store.move_to_end(key)
    while len(store) > MAX_EVALUATIONS:
        store.popitem(last=False)
    st.session_state[KEY_EVALUATIONS] = store
    return result
