"""Cached loaders, error display and session-state keys shared by every page."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from softmass_core.errors import SoftmassError
from softmass_core.inference import serving
from softmass_core.labels import DATA_KIND_NAMES
from softmass_core.weights.manifest import Manifest, discover_with_errors, read_manifest
from softmass_core.weights.weight_set import WeightSet, verify_files

if TYPE_CHECKING:  # imported where used: the first page run of a fresh server stays light
    import pandas as pd

    from softmass_core.reader_study.store import ReaderStudyStore

ROOT = Path(__file__).resolve().parent.parent

# Session-state keys (named once, used everywhere).
KEY_WEIGHTS = "softmass.weights_dir"
KEY_READER_NAME = "softmass.reader_name"  # the reader identifies once; pages share it

DISCLAIMER = (
    "Research demo, not for clinical use. The shipped models learned simulated images "
    "(`phantom`) or breast ultrasound (`busi`), not real superficial soft-tissue masses."
)


def require_frame() -> None:
    """Make sure the page runs inside ``app.py`` (disclaimer, weight-set picker, navigation).

    Streamlit keeps a compatibility mode for apps with a ``pages/`` folder: until
    some session has run ``st.navigation``, a request for a page's own address
    (a bookmark to ``/cohort`` after a restart) runs that page file alone, without
    ``app.py``, and every later session of the process does the same.  Each page
    calls this first: it leaves that mode the way ``st.navigation`` itself does
    (``PagesManager.uses_pages_directory = False``, Streamlit 1.67) and reruns, so
    the same address is served through ``app.py``.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def weights_root() -> Path:
    """Folder searched for weight sets: env SOFTMASS_WEIGHTS (read on every call), else ``weights/``."""
    return Path(os.environ.get("SOFTMASS_WEIGHTS", ROOT / "weights"))


def cache_root() -> Path:
    """Folder for generated data (demo cohort, reader-study database): env SOFTMASS_CACHE, else ``cache/``."""
    return Path(os.environ.get("SOFTMASS_CACHE", ROOT / "cache"))


def reader_db_url() -> str:
    """Reader-study database: env SOFTMASS_READER_DB (SQLAlchemy URL or file), else an SQLite file in the cache."""
    url = os.environ.get("SOFTMASS_READER_DB", "").strip()
    return url or f"sqlite:///{cache_root() / 'reader_study.sqlite'}"


#: Session-state key: ``{extraction folder: zip name as uploaded}`` of this session's cohort zips.
KEY_UPLOAD_NAMES = "softmass.cohort.upload_names"


def show_error(exc: BaseException) -> None:
    """Show a core error as an ``st.error`` box and stop the page (no traceback).

    Paths inside an uploaded cohort zip's extraction folder are shown as the
    user knows the file (``cohort.csv in my_cohort.zip``), never as server paths.
    """
    from softmass_core.cohorts.cohort_zip import name_in_zip

    names = st.session_state.get(KEY_UPLOAD_NAMES) or {}
    st.error(name_in_zip(str(exc), names, uploads_root=cache_root() / "uploads"))
    st.stop()


@contextmanager
def guarded() -> Iterator[None]:
    """Turn core errors (and unexpected ones) into an ``st.error`` box.

    Catches ``Exception`` only: ``st.stop``/``st.rerun`` are BaseExceptions and pass.
    """
    try:
        yield
    except SoftmassError as exc:
        show_error(exc)
    except Exception as exc:  # noqa: BLE001 - last line of defence for the user
        st.error(f"Unexpected error ({type(exc).__name__}): {exc}. Please report it with the steps that led here.")
        st.stop()


@st.cache_data(ttl=30, show_spinner=False)
def list_weight_sets(root: str | None = None) -> tuple[list[Manifest], dict[str, str]]:
    """Valid manifests under ``root`` (default :func:`weights_root`) and the reasons others were skipped."""
    return discover_with_errors(root if root is not None else str(weights_root()))


def load_weight_set(folder: str, stamp: float) -> WeightSet:
    """One verified :class:`WeightSet` per folder, shared by every session and page.

    The process-wide registry (:data:`softmass_core.inference.serving.REGISTRY`) reads
    the manifest and checks every sha256 here, once however many sessions ask
    at the same time, and builds the models in a background thread; a page
    that runs a model before it is built waits for it.  ``stamp`` (the newest
    modification time of the set's files) makes a re-exported set reload.
    """
    return serving.REGISTRY.weight_set(folder, stamp)


def warm_up_weight_set(folder: str | Path) -> None:
    """Start loading ``folder``'s set and running a first case in the background (once per process and set).

    The app calls it for the sidebar's set at the top of every run; it returns at once.
    """
    folder = Path(folder)
    serving.warm_up(folder, _stamp(folder))


def _stamp(folder: Path) -> float:
    """Newest modification time of the manifest and weight files (0 when missing)."""
    try:
        return max(p.stat().st_mtime for p in folder.iterdir() if p.is_file())
    except (OSError, ValueError):
        return 0.0


def get_weight_set(folder: str | Path) -> WeightSet:
    """The loaded set in ``folder`` (cached per folder and file times; a changed file reloads and re-verifies)."""
    folder = Path(folder)
    return load_weight_set(str(folder.resolve()), _stamp(folder))


def default_weight_set(manifests: list[Manifest]) -> Manifest | None:
    """The set a new session starts with: ``SOFTMASS_DEFAULT_WEIGHTS`` (an id) if set and present,
    else the first set with the full cascade (DLM-1 + DLM-2), else the first set."""
    wanted = os.environ.get("SOFTMASS_DEFAULT_WEIGHTS")
    for m in manifests:
        if wanted and m.id == wanted:
            return m
    full = [m for m in manifests if m.has_dlm2]
    return (full or manifests or [None])[0]


def active_weight_set_dir() -> Path | None:
    """The folder picked in the sidebar, else the default set (see :func:`default_weight_set`)."""
    manifests, _ = list_weight_sets(str(weights_root()))
    folders = [m.path.parent for m in manifests]
    chosen = st.session_state.get(KEY_WEIGHTS)
    if chosen and Path(chosen) in folders:
        return Path(chosen)
    default = default_weight_set(manifests)
    return default.path.parent if default else None


def active_weight_set() -> WeightSet:
    """The active weight set (loaded once per process); stops the page when there is none."""
    folder = active_weight_set_dir()
    if folder is None:
        st.warning(f"No weight set found under `{weights_root()}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
        st.stop()
    with guarded():
        return get_weight_set(folder)


def weight_set_label(manifest: Manifest) -> str:
    """``"phantom v1.2 (simulated images)"`` for select boxes."""
    return f"{manifest.name} v{manifest.version} ({DATA_KIND_NAMES.get(manifest.data_kind, manifest.data_kind)})"


def weight_set_models(manifest: Manifest) -> str:
    """``"DLM-1 + DLM-2"`` or ``"DLM-1 only"``, with the member count of ensembles (``"..., each an ensemble of 5"``)."""
    text = "DLM-1 + DLM-2" if manifest.has_dlm2 else "DLM-1 only"
    sizes = {mid: len(e.members) for mid, e in manifest.models.items() if e.is_ensemble}
    if not sizes:
        return text
    if len(sizes) == len(manifest.models) and len(set(sizes.values())) == 1:
        return f"{text}, {'each ' if len(sizes) > 1 else ''}an ensemble of {next(iter(sizes.values()))}"
    return f"{text}; ensembles: " + ", ".join(f"{mid} of {k}" for mid, k in sizes.items())


@st.cache_resource(show_spinner=False)
def _reader_store(url: str) -> ReaderStudyStore:
    from softmass_core.reader_study.store import ReaderStudyStore

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return ReaderStudyStore(url)


def reader_store() -> ReaderStudyStore:
    """The reader-study database (one engine per URL, shared by every session and page)."""
    with guarded():
        return _reader_store(reader_db_url())


def study_admin_passphrase() -> str | None:
    """The reader study administrator's passphrase, or None when none is configured.

    Read on every call from env ``SOFTMASS_STUDY_ADMIN_PASSPHRASE``, else the
    Streamlit secret ``study_admin_passphrase`` (``.streamlit/secrets.toml``,
    which must never be committed).  Blank values count as none.
    """
    from softmass_core.reader_study.cases import ADMIN_PASSPHRASE_ENV, ADMIN_PASSPHRASE_SECRET

    value = os.environ.get(ADMIN_PASSPHRASE_ENV, "")
    if not value.strip():
        try:
            value = str(st.secrets.get(ADMIN_PASSPHRASE_SECRET, "") or "")
        except Exception:  # noqa: BLE001 - no secrets file (or an unreadable one) means no secret
            value = ""
    return value if value.strip() else None


# --------------------------------------------------------------------------- model cards


@st.cache_data(show_spinner="Checking the weight files ...", max_entries=32)
def _checksum_status(folder: str, stamp: float) -> tuple[bool, str]:
    from softmass_core.weights.models import tensor_problems

    try:
        manifest = read_manifest(folder)
        status = verify_files(manifest)
        problems = tensor_problems(manifest)
    except SoftmassError as exc:
        return False, str(exc)
    if problems:
        return False, " ".join(f"{model_id}: {text}" for model_id, text in problems.items())
    n_files = sum(len(e.members) for e in manifest.models.values()) + len(set(status) - set(manifest.models))
    return True, f"all {n_files} weight file(s) match the manifest and fit its architecture ({', '.join(status)})"


def checksum_status(folder: str | Path) -> tuple[bool, str]:
    """``(True, summary)`` when every weight file matches its sha256 and fits its architecture, else ``(False, why)``.

    Cached per folder and file modification times, so a changed file is checked again.
    """
    folder = Path(folder)
    return _checksum_status(str(folder), _stamp(folder))


def read_model_card(folder: str | Path) -> str | None:
    """The set's README.md text, or None when it has none."""
    path = Path(folder) / "README.md"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


#: How each ``resize_mode`` prepares the ROI, in words.
RESIZE_WORDS = {
    "stretch": "stretch to size (as in the paper)",
    "pad": "keep aspect, pad",
    "context": "keep aspect, grow the ROI with the image around it",
}


def input_spec_frame(manifest: Manifest) -> pd.DataFrame:
    """Two columns ``field, value`` describing the model input."""
    import pandas as pd

    spec = manifest.input_spec
    rows = [
        ("size (width x height)", f"{spec.width} x {spec.height} px"),
        ("ROI resize", RESIZE_WORDS.get(spec.resize_mode, spec.resize_mode)),
        ("interpolation", spec.interpolation),
        ("mean (RGB)", ", ".join(f"{v:.3f}" for v in spec.mean)),
        ("std (RGB)", ", ".join(f"{v:.3f}" for v in spec.std)),
        ("test-time views", tta_text(manifest.tta)),
    ]
    return pd.DataFrame(rows, columns=["field", "value"])


def tta_text(views) -> str:
    """How the set scores an image, in words for captions and tables."""
    if "hflip" in views:
        return "image and its left-right mirror, probabilities averaged"
    return "one pass per image"


def models_frame(manifest: Manifest) -> pd.DataFrame:
    """One row per model: id, labels, threshold and how it was chosen, architecture, member count, sha256 prefix."""
    import pandas as pd

    rows = []
    for model_id, entry in manifest.models.items():
        first = f" (first of {len(entry.members)})" if entry.is_ensemble else ""
        rows.append(
            {
                "model": model_id,
                "positive label": entry.positive_label,
                "labels": ", ".join(entry.labels),
                "threshold": entry.threshold,
                "threshold method": entry.threshold_method,
                "architecture": entry.architecture.timm_name,
                "members": len(entry.members),
                "sha256": entry.sha256[:12] + "..." + first,
            }
        )
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metrics_frame(manifest: Manifest) -> pd.DataFrame | None:
    """Every ``{"value", "ci_low", "ci_high"}`` estimate in the manifest's metrics, one row each.

    Rows: ``where`` (the path of keys, e.g. ``test_a / dlm1``), ``metric``,
    ``value``, ``95% CI``, ``method``.  None when the manifest has no
    metrics; an empty frame when they hold no such estimate.
    """
    import pandas as pd

    raw = manifest.metrics
    if not raw:
        return None
    rows: list[dict[str, str]] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, Mapping):
            if "value" in node and ("ci_low" in node or "ci_high" in node):
                lo, hi = node.get("ci_low"), node.get("ci_high")
                rows.append(
                    {
                        "where": " / ".join(p for p in path[:-1] if p != "metrics") or "-",
                        "metric": path[-1] if path else "-",
                        "value": _fmt(node.get("value")),
                        "95% CI": f"[{_fmt(lo)}, {_fmt(hi)}]",
                        "method": _fmt(node.get("method", "")),
                    }
                )
                return
            for k, v in node.items():
                walk(v, [*path, str(k)])

    walk(raw, [])
    return pd.DataFrame(rows, columns=["where", "metric", "value", "95% CI", "method"])
