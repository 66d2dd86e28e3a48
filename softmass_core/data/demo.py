"""Demo data for the dashboard: a fixed set of simulated cases and a cached cohort.

:func:`demo_cases` gives twelve simulated cases (two per class: malignant and
the five benign subtypes), generated deterministically by
:func:`softmass_core.data.phantom.generate_case` for hospital 1 and kept in memory
for the life of the process.  :func:`ensure_demo_cohort` generates the
simulated hospitals' cohorts once into a cache folder and reuses them.

Images are RGB ``uint8`` arrays ``(H, W, 3)``; ROIs are original-image
pixels (see :mod:`softmass_core.io.roi`).  Nothing here is a real patient.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.data import phantom
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import CaseImages
from softmass_core.labels import MALIGNANT, SUBTYPES

#: Seed of every demo case and of the demo cohort.
DEMO_SEED = 2023
#: Classes of the demo cases, in the order they are listed.
DEMO_LABELS: tuple[str, ...] = (MALIGNANT, *SUBTYPES)
#: Cases per class.
CASES_PER_LABEL = 2
#: The simulated hospital the demo cases come from.
DEMO_HOSPITAL = 1

_COHORT_LOCK = threading.Lock()


class DemoCase(phantom.PhantomCase):
    """A simulated case as the dashboard keeps it: a :class:`PhantomCase` whose images are read-only.

    Shared by every session (frozen, images not writeable); ``gray`` and
    ``cdfi`` are ``(H, W, 3)`` uint8, ROIs in image pixels.
    """

    def to_case_images(self) -> CaseImages:
        """The case as the cascade takes it (both images with their ROIs)."""
        return CaseImages(gray=self.gray, cdfi=self.cdfi, gray_roi=self.gray_roi, cdfi_roi=self.cdfi_roi)


def _as_rgb(image: Any) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3|4)`` image -> read-only ``(H, W, 3)`` uint8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SoftmassError(f"A simulated image has shape {arr.shape}; expected (H, W) or (H, W, 3).")
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False  # shared by every session: nobody may draw on it
    return arr


def _case_seed(label_index: int, k: int) -> int:
    """Seed of the ``k``-th (1-based) demo case of the ``label_index``-th class."""
    return DEMO_SEED * 1000 + 10 * label_index + k


def _demo_plan() -> list[tuple[str, str, int]]:
    """``(case_id, label, seed)`` of every demo case, in list order."""
    return [
        (f"demo-{label}-{k}", label, _case_seed(i, k))
        for i, label in enumerate(DEMO_LABELS)
        for k in range(1, CASES_PER_LABEL + 1)
    ]


#: Ids of the demo cases, in list order (known without simulating anything).
DEMO_CASE_IDS: tuple[str, ...] = tuple(cid for cid, _, _ in _demo_plan())


@functools.cache
def _generate(case_id: str, label: str, seed: int, hospital: int = DEMO_HOSPITAL) -> DemoCase:
    pc = phantom.generate_case(label, hospital=hospital, seed=seed)
    return DemoCase(
        **{f.name: getattr(pc, f.name) for f in fields(pc)}
        | {
            "case_id": case_id,
            "gray": _as_rgb(pc.gray),
            "cdfi": _as_rgb(pc.cdfi),
            "age": int(pc.age),
            "sex": str(pc.sex),
        }
    )


def simulated_case(case_id: str, label: str, seed: int, *, hospital: int = DEMO_HOSPITAL) -> DemoCase:
    """One simulated case of class ``label`` drawn with ``seed`` (cached per process).

    For other case lists than the demo cases, e.g. the reader study's own
    cases (:mod:`softmass_core.reader_study.cases`), which must use seeds of their own.
    """
    return _generate(case_id, label, int(seed), int(hospital))


def demo_label(case_id: str) -> str:
    """True class of a demo case, without simulating it; SoftmassError if the id is unknown."""
    for cid, label, _ in _demo_plan():
        if cid == case_id:
            return label
    raise SoftmassError(f"There is no demo case {case_id!r}. Pick one of: {', '.join(DEMO_CASE_IDS)}.")


def demo_cases() -> list[DemoCase]:
    """The 12 demo cases (2 per class, malignant first), each simulated once per process."""
    return [_generate(cid, label, seed) for cid, label, seed in _demo_plan()]


def demo_case(case_id: str) -> DemoCase:
    """The demo case with this id, e.g. ``"demo-lipoma-1"`` (simulates only that case); SoftmassError if unknown."""
    for cid, label, seed in _demo_plan():
        if cid == case_id:
            return _generate(cid, label, seed)
    raise SoftmassError(f"There is no demo case {case_id!r}. Pick one of: {', '.join(DEMO_CASE_IDS)}.")


#: Default size of the demo cohort, as a multiple of the paper's cohorts (1051 cases in all at 1.0).
#: At 1.0 the draw equals the shipped ``phantom`` set's own cohorts, so the Cohort page reproduces its
#: model card, and validation holds 8 malignant cases (0.25 held 2: a sensitivity CI of about 1-99%).
DEMO_COHORT_SCALE = 1.0


def demo_cohort_dir(cache_root: Path, *, scale: float = DEMO_COHORT_SCALE, seed: int = DEMO_SEED) -> Path:
    """Folder that holds the demo cohort for this ``scale``, ``seed`` and generator version
    (a newer generator draws other images, so it never reuses an older cache)."""
    return Path(cache_root) / f"phantom-g{phantom.GENERATOR_VERSION}-s{scale}-seed{seed}"


def ensure_demo_cohort(
    cache_root: Path,
    *,
    scale: float = DEMO_COHORT_SCALE,
    seed: int = DEMO_SEED,
    progress: Callable[..., Any] | None = None,
) -> Path:
    """Path of the simulated cohorts' CSV (hospitals 1-3), generating them on first use.

    Every cohort of ``phantom.COHORT_PLAN`` is generated with its counts
    multiplied by ``scale`` into :func:`demo_cohort_dir`;
    a later call finds ``cohort.csv`` there and returns it without generating
    anything.  ``progress`` is handed to ``phantom.generate_cohorts``.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < float(scale) <= 1000:
        raise SoftmassError(f"The demo cohort scale must be a positive number, got {scale!r}.")
    out_dir = demo_cohort_dir(cache_root, scale=scale, seed=seed)
    csv_path = out_dir / "cohort.csv"
    with _COHORT_LOCK:
        if csv_path.is_file():
            return csv_path
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SoftmassError(
                f"Could not create the demo cohort folder {out_dir}: {exc.strerror or exc}. "
                "Set SOFTMASS_CACHE to a writable folder."
            ) from exc
        written = phantom.generate_cohorts(out_dir, scale=scale, seed=seed, progress=progress)
        return Path(written)
