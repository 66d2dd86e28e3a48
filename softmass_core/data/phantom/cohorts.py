"""Simulated cohorts with the class mix of Long et al. (2023), Table 1, written as PNGs + CSV."""

from __future__ import annotations

import csv
import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from softmass_core.data.phantom.case import DEFAULT_DIFFICULTY, generate_case
from softmass_core.data.phantom.classes import PHANTOM_LABELS
from softmass_core.errors import SoftmassError
from softmass_core.labels import MALIGNANT
from softmass_core.paths import make_dir

#: Raised whenever a seed draws other images than before (2: hospital 3 gained steered
#: compounding, coarse line density, edge enhancement and tighter reader ROIs).
GENERATOR_VERSION = 2

#: cohort -> (hospital, {label: count}); counts from the paper's Table 1.
COHORT_PLAN: dict[str, tuple[int, dict[str, int]]] = {
    "training": (
        1,
        {
            MALIGNANT: 32,
            "lipoma": 121,
            "hemangioma": 120,
            "neurinoma": 120,
            "epidermal_cyst": 160,
            "calcifying_epithelioma": 65,
        },
    ),
    "validation": (
        1,
        {
            MALIGNANT: 8,
            "lipoma": 30,
            "hemangioma": 30,
            "neurinoma": 30,
            "epidermal_cyst": 40,
            "calcifying_epithelioma": 16,
        },
    ),
    "test_a": (
        2,
        {
            MALIGNANT: 5,
            "lipoma": 40,
            "hemangioma": 16,
            "neurinoma": 25,
            "epidermal_cyst": 45,
            "calcifying_epithelioma": 25,
        },
    ),
    "test_b": (
        3,
        {
            MALIGNANT: 10,
            "lipoma": 28,
            "hemangioma": 20,
            "neurinoma": 18,
            "epidermal_cyst": 27,
            "calcifying_epithelioma": 20,
        },
    ),
}

CSV_NAME = "cohort.csv"
#: Written beside the CSV: how the cohorts were drawn (seed, scale, difficulty, generator version).
PROVENANCE_NAME = "phantom.json"
CSV_COLUMNS: tuple[str, ...] = (
    "case_id",
    "cohort",
    "label",
    "gray_path",
    "cdfi_path",
    "gray_roi",
    "cdfi_roi",
    "age",
    "sex",
    "hospital",
    "atypical",
)
_PREFIX = {"training": "tr", "validation": "va", "test_a": "ta", "test_b": "tb"}


def scaled_counts(cohort: str, scale: float = 1.0) -> dict[str, int]:
    """Class counts of ``cohort`` multiplied by ``scale`` (rounded, at least 1 per class)."""
    _, counts = COHORT_PLAN[cohort]
    return {label: max(1, int(round(n * scale))) for label, n in counts.items()}


def plan_cases(cohort: str, seed: int, scale: float = 1.0) -> list[tuple[int, str, int]]:
    """(index, label, case seed) for every case of ``cohort``, in a shuffled class order.

    Each case seed depends only on (seed, cohort, index), so cases can be made
    independently and in parallel.
    """
    tag = zlib.crc32(cohort.encode("utf-8"))
    labels = [lab for lab, n in scaled_counts(cohort, scale).items() for _ in range(n)]
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, tag, 0xC0FFEE]).permutation(len(labels))
    out = []
    for index, k in enumerate(order):
        case_seed = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag, index]).generate_state(1)[0])
        out.append((index, labels[int(k)], case_seed))
    return out


def rescan_name(cohort: str, hospital: int) -> str:
    """Cohort name of ``cohort``'s patients re-scanned at ``hospital`` (e.g. "validation_h3")."""
    return f"{cohort}_h{int(hospital)}"


def _make_case(job: tuple[str, int, str, int, int, float, str, int | None]) -> dict[str, str]:
    plan_name, index, label, plan_hospital, case_seed, difficulty, out_dir, rescan = job
    case_id = f"{_PREFIX.get(plan_name, plan_name)}-{index:04d}"
    if rescan is None:
        cohort, hospital, anatomy = plan_name, plan_hospital, None
    else:
        cohort, hospital, anatomy = rescan_name(plan_name, rescan), rescan, plan_hospital
    case = generate_case(
        label, hospital=hospital, seed=case_seed, difficulty=difficulty, case_id=case_id, anatomy_hospital=anatomy
    )
    rel_dir = Path("images") / cohort
    folder = Path(out_dir) / rel_dir
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, arr in (("gray", case.gray), ("cdfi", case.cdfi)):
        name = f"{case_id}_{kind}.png"
        Image.fromarray(arr, "RGB").save(folder / name, compress_level=3)
        paths[kind] = (rel_dir / name).as_posix()
    return {
        "case_id": case_id,
        "cohort": cohort,
        "label": label,
        "gray_path": paths["gray"],
        "cdfi_path": paths["cdfi"],
        "gray_roi": case.gray_roi.as_string(),
        "cdfi_roi": case.cdfi_roi.as_string(),
        "age": str(case.age),
        "sex": case.sex,
        "hospital": str(case.hospital),
        "atypical": atypical_text(case.meta["swapped"]),
    }


def atypical_text(swapped: dict[str, str]) -> str:
    """The CSV's ``atypical`` cell: "group:class" for each feature group drawn from another class, ";"-joined.

    Empty for a typical case.  Example: ``"echo:epidermal_cyst;vascular:malignant"``.
    """
    return ";".join(f"{group}:{source}" for group, source in swapped.items())


def generate_cohorts(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 2023,
    scale: float = 1.0,
    cohorts: Sequence[str] | None = None,
    workers: int = 1,
    difficulty: float = DEFAULT_DIFFICULTY,
    progress: Callable[[int, int], None] | None = None,
    rescan_hospital: int | None = None,
) -> Path:
    """Write simulated cohorts as PNGs plus ``out_dir/cohort.csv`` and return the CSV path.

    Images go to ``out_dir/images/<cohort>/<case_id>_{gray,cdfi}.png``; CSV paths
    are relative to the CSV with forward slashes and ROIs read "x0,y0,x1,y1".
    The CSV is removed first and written last (temp name, then rename), so a
    folder whose run was interrupted has no ``cohort.csv``.

    Args:
        out_dir: output folder (created).
        seed: master seed; the same seed gives identical files.
        scale: multiplies every class count (at least 1 per class).
        cohorts: subset of :data:`COHORT_PLAN` names (default: all four).
        workers: processes to use (1 = in this process).
        difficulty: overlap knob in [0, 1].
        progress: called as ``progress(done, total)`` after each case.
        rescan_hospital: image the same patients (lesion, surroundings, age,
            sex) on this hospital's scanner instead.  Cohorts are then named
            ``<cohort>_h<N>`` and keep their case ids, so each case pairs with
            its original: a scanner shift measured on identical lesions.
    """
    names = list(COHORT_PLAN) if cohorts is None else [str(c).strip() for c in cohorts if str(c).strip()]
    unknown = [c for c in names if c not in COHORT_PLAN]
    if unknown or not names:
        raise SoftmassError(f"Unknown cohort(s) {unknown or names}: choose from {', '.join(COHORT_PLAN)}.")
    if not scale > 0:
        raise SoftmassError(f"scale must be positive, got {scale!r}.")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise SoftmassError(f"difficulty must lie in [0, 1], got {difficulty!r}.")
    if rescan_hospital is not None:
        from softmass_core.data.phantom.scanner import get_scanner

        get_scanner(rescan_hospital)  # a clear error for an unknown hospital
        rescan_hospital = int(rescan_hospital)
    out = make_dir(out_dir, "--out")
    csv_path = out / CSV_NAME
    csv_path.unlink(missing_ok=True)
    (out / PROVENANCE_NAME).unlink(missing_ok=True)
    jobs = [
        (name, index, label, COHORT_PLAN[name][0], case_seed, float(difficulty), str(out), rescan_hospital)
        for name in names
        for index, label, case_seed in plan_cases(name, seed, scale)
    ]
    total = len(jobs)
    rows: list[dict[str, str]] = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=int(workers)) as pool:
            for row in pool.map(_make_case, jobs, chunksize=4):
                rows.append(row)
                if progress is not None:
                    progress(len(rows), total)
    else:
        for job in jobs:
            rows.append(_make_case(job))
            if progress is not None:
                progress(len(rows), total)
    tmp = out / (CSV_NAME + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    provenance = {
        "generator": "softmass phantom",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "scale": float(scale),
        "difficulty": float(difficulty),
        "cohorts": dict(Counter(row["cohort"] for row in rows)),
        "rescan_hospital": rescan_hospital,
    }
    (out / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, csv_path)
    return csv_path


def read_provenance(csv_path: str | os.PathLike[str]) -> dict | None:
    """The ``phantom.json`` written beside a generated cohort CSV, or None (not generated here, or unreadable)."""
    path = Path(csv_path).parent / PROVENANCE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "softmass phantom" else None


def benchmark(n_cases: int = 60, seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY) -> dict:
    """Time :func:`generate_case` per hospital (single process, this CPU).

    A case renders both images from one scene, so the per-image figure is half
    the time of a pair.

    Returns:
        ``{"hospital_<h>": {"n": .., "mean_ms_per_image": .., "p95_ms_per_image": ..,
        "mean_ms_per_pair": .., "p95_ms_per_pair": ..}, "mean_ms_per_image": ..,
        "p95_ms_per_image": ..}``
    """
    out: dict = {}
    every: list[float] = []
    generate_case(PHANTOM_LABELS[0], hospital=1, seed=seed)  # warm caches
    for hospital in (1, 2, 3):
        times = []
        for k in range(max(1, int(n_cases))):
            label = PHANTOM_LABELS[k % len(PHANTOM_LABELS)]
            t0 = time.perf_counter()
            generate_case(label, hospital=hospital, seed=seed + k, difficulty=difficulty)
            times.append((time.perf_counter() - t0) * 1000.0)
        t = np.asarray(times)
        every.extend(t / 2.0)
        out[f"hospital_{hospital}"] = {
            "n": int(t.size),
            "mean_ms_per_image": round(float(t.mean() / 2.0), 2),
            "p95_ms_per_image": round(float(np.percentile(t, 95) / 2.0), 2),
            "mean_ms_per_pair": round(float(t.mean()), 2),
            "p95_ms_per_pair": round(float(np.percentile(t, 95)), 2),
        }
    out["mean_ms_per_image"] = round(float(np.mean(every)), 2)
    out["p95_ms_per_image"] = round(float(np.percentile(every, 95)), 2)
    return out
