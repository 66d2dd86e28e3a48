"""Cached loaders, error display and session-state keys shared by every page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from softmass_core.errors import SoftmassError
from softmass_core.store import ReaderStudyStore
from softmass_core.weights import Manifest, WeightSet, discover_with_errors

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_ROOT = Path(os.environ.get("SOFTMASS_WEIGHTS", ROOT / "weights"))
CACHE_ROOT = Path(os.environ.get("SOFTMASS_CACHE", ROOT / "cache"))

# Session-state keys (named once, used everywhere).
KEY_WEIGHTS = "softmass.weights_dir"

DISCLAIMER = (
    "Research demo, not for clinical use. The shipped models learned simulated images "
    "(`phantom`) or breast ultrasound (`busi`), not real superficial soft-tissue masses."
)

#: How each manifest ``data_kind`` is named for people.
DATA_KIND_NAMES: dict[str, str] = {
    "simulated": "simulated images",
    "breast_ultrasound": "breast ultrasound",
    "soft_tissue_ultrasound": "soft-tissue ultrasound",
    "test": "test weights (random)",
}


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


def show_error(exc: BaseException) -> None:
    """Show a core error as an ``st.error`` box and stop the page (no traceback)."""
    st.error(str(exc))
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


@st.cache_resource(show_spinner="Loading and verifying the models ...", max_entries=4)
def load_weight_set(folder: str, stamp: float) -> WeightSet:
    """One verified :class:`WeightSet` per folder, shared by every session.

    ``stamp`` (the manifest's modification time) makes a re-exported set reload.
    """
    ws = WeightSet.load(folder)
    ws.load_all()
    return ws


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


def active_weight_set_dir() -> Path | None:
    """The folder picked in the sidebar, else the first weight set found."""
    manifests, _ = list_weight_sets(str(weights_root()))
    folders = [m.path.parent for m in manifests]
    chosen = st.session_state.get(KEY_WEIGHTS)
    if chosen and Path(chosen) in folders:
        return Path(chosen)
    return folders[0] if folders else None


def active_weight_set() -> WeightSet:
    """The active weight set (loaded once per process); stops the page when there is none."""
    folder = active_weight_set_dir()
    if folder is None:
        st.warning(f"No weight set found under `{weights_root()}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
        st.stop()
    with guarded():
        return get_weight_set(folder)


def weight_set_label(manifest: Manifest) -> str:
    """``"name v1.2 (simulated images, DLM-1 + DLM-2)"`` for select boxes and captions."""
    kind = DATA_KIND_NAMES.get(manifest.data_kind, manifest.data_kind)
    models = "DLM-1 + DLM-2" if manifest.has_dlm2 else "DLM-1 only"
    return f"{manifest.name} v{manifest.version} ({kind}, {models})"


@st.cache_resource(show_spinner=False)
def _reader_store(url: str) -> ReaderStudyStore:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return ReaderStudyStore(url)


def reader_store() -> ReaderStudyStore:
    """The reader-study database (one engine per URL, shared by every session and page)."""
    with guarded():
        return _reader_store(reader_db_url())
