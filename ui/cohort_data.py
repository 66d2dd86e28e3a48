"""Where the Cohort page's data comes from, and the evaluations it keeps.

* :func:`resolve_server_csv`: a cohort CSV from a path typed by the user
  (the CSV itself, or a folder holding ``cohort.csv`` or exactly one CSV);
* :func:`extract_upload`: an uploaded zip, extracted once per content into
  ``<cache>/uploads/<sha256>`` by :func:`softmass_core.cohorts.cohort_zip.extract_cohort_zip`;
* :func:`progress_reporter`: a core ``progress`` callback that drives an
  ``st.progress`` bar;
* :func:`evaluate_cohort` / :func:`find_evaluation`: a weight set's evaluation
  on a cohort through the on-disk cache of :mod:`softmass_core.cohorts.evalcache`
  (``<cache>/evaluations``, see ``common.cache_root``), so a cohort is scored once per weight set and
  settings, for every session and across server restarts;
* :func:`evaluation`: an evaluation by its entry id (kept in memory for the
  process, else read from disk);
* :func:`dlm1_at_threshold`: DLM-1's metrics at a slider threshold
  (:func:`softmass_core.cohorts.evaluate.metrics_at_threshold`, a bootstrap per
  cohort), cached per (entry id, threshold), so moving the slider back is
  instant; :func:`sweep`, :func:`calibration` and :func:`comparison` cache
  the page's other figures per entry id the same way.  An entry id names the
  weight set's files (sha256), the cohort's content and the settings.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from softmass_core.cohorts import evalcache
from softmass_core.cohorts.cohort import Cohort, read_cohort
from softmass_core.cohorts.cohort_zip import extract_cohort_zip
from softmass_core.cohorts.compare import SetComparison, compare_sets
from softmass_core.cohorts.curves import cohort_calibration, cohort_sweep
from softmass_core.cohorts.evaluate import Evaluation, metrics_at_threshold
from softmass_core.errors import CohortError
from softmass_core.inference.cascade import Cascade
from softmass_core.weights.weight_set import WeightSet
from ui import common

#: How many evaluations the process keeps in memory (more stay on disk).
MAX_IN_MEMORY = 16


@st.cache_data(max_entries=8, show_spinner="Reading and checking the cohort file ...")
def _load_cohort(csv_path: str, mtime_ns: int) -> Cohort:
    return read_cohort(csv_path)


def cohort_from(csv_path: Path) -> Cohort:
    """The validated cohort of ``csv_path`` (cached per path and modification time)."""
    return _load_cohort(str(csv_path), Path(csv_path).stat().st_mtime_ns)


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


def evaluations_dir() -> Path:
    """Where evaluations are kept on disk: ``<cache>/evaluations`` (``common.cache_root``: env SOFTMASS_CACHE)."""
    return common.cache_root() / evalcache.SUBDIR


class _Registry:
    """Evaluations of this process by entry id, newest last (thread-safe; every session shares it)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Evaluation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, eid: str) -> Evaluation | None:
        with self._lock:
            ev = self._items.get(eid)
            if ev is not None:
                self._items.move_to_end(eid)
            return ev

    def put(self, eid: str, ev: Evaluation) -> None:
        with self._lock:
            self._items[eid] = ev
            self._items.move_to_end(eid)
            while len(self._items) > MAX_IN_MEMORY:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def evaluation(eid: str | None) -> Evaluation | None:
    """The evaluation with entry id ``eid``: from memory, else from the disk cache; None if neither has it."""
    if not eid:
        return None
    found = _registry().get(eid)
    if found is None:
        found = evalcache.load_entry(evaluations_dir(), eid)
        if found is not None:
            _registry().put(eid, found)
    return found


def find_evaluation(ws: WeightSet, cohort: Cohort, cohorts: Sequence[str]) -> str | None:
    """Entry id of a stored evaluation of ``ws`` on ``cohort`` (restricted to ``cohorts``), without running
    any model; None when there is none (or it is stale or damaged)."""
    found = evalcache.cached_evaluate(Cascade(ws), cohort.subset(list(cohorts)), evaluations_dir(), lookup_only=True)
    if found is None:
        return None
    _registry().put(found.entry_id, found.evaluation)
    return found.entry_id


def evaluate_cohort(ws: WeightSet, cohort: Cohort, cohorts: Sequence[str], *, label: str) -> evalcache.CacheResult:
    """Evaluate ``ws`` on ``cohort`` (restricted to ``cohorts``) with a progress bar, unless it is stored.

    The result is kept on disk and in memory; a second session asking for the
    same evaluation meanwhile waits for this one's result.
    """
    subset = cohort.subset(list(cohorts))
    bar = st.progress(0.0, text=f"Evaluating {label} on {len(subset.rows)} cases ...")

    def waiting() -> None:
        bar.progress(0.0, text=f"Another session is evaluating {label} on these cases; waiting for its result ...")

    try:
        result = evalcache.cached_evaluate(
            Cascade(ws),
            subset,
            evaluations_dir(),
            progress=progress_reporter(bar, f"Evaluating {label}"),
            on_wait=waiting,
        )
    finally:
        bar.empty()
    _registry().put(result.entry_id, result.evaluation)
    return result


@st.cache_data(max_entries=512, show_spinner=False)
def dlm1_at_threshold(eid: str, threshold: float) -> dict[str, dict[str, Any]]:
    """DLM-1's metrics per cohort of evaluation ``eid`` at ``threshold`` (same bootstrap as the evaluation).

    Keyed by the entry id and the threshold, not by the predictions, so a
    threshold seen before (by any session) costs nothing.
    """
    ev = evaluation(eid)
    return {} if ev is None else metrics_at_threshold(ev, threshold)


@st.cache_data(max_entries=64, show_spinner=False)
def sweep(eid: str, cohort: str) -> Any:
    """DLM-1's sensitivity / specificity sweep of one cohort of ``eid`` (None: one class only, or no evaluation)."""
    ev = evaluation(eid)
    return None if ev is None else cohort_sweep(ev.predictions, cohort)


@st.cache_data(max_entries=64, show_spinner=False)
def calibration(eid: str, cohorts: tuple[str, ...]) -> dict[str, Any]:
    """DLM-1's calibration curve per cohort of ``eid``."""
    ev = evaluation(eid)
    return {} if ev is None else cohort_calibration(ev.predictions, cohorts)


@st.cache_data(max_entries=16, show_spinner=False)
def decision_curves(eid: str) -> dict[str, list[dict[str, float]]]:
    """DLM-1's decision curve per cohort of ``eid`` (net benefit, treat all)."""
    ev = evaluation(eid)
    return {} if ev is None else ev.decision_curves()


@st.cache_data(max_entries=64, show_spinner=False)
def comparison(eid_a: str, eid_b: str, cohorts: tuple[str, ...]) -> list[SetComparison]:
    """Paired DeLong comparison of evaluations ``eid_a`` (A) and ``eid_b`` (B) on ``cohorts``."""
    a, b = evaluation(eid_a), evaluation(eid_b)
    if a is None or b is None:
        return []
    return compare_sets(a.predictions, b.predictions, cohorts=cohorts)
