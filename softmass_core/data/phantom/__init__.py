"""Simulated superficial soft-tissue ultrasound cases (grayscale B-mode + CDFI).

The paper's images are private, so the project renders realistic cases of the
six classes with numpy/scipy/Pillow: a convolution speckle model over skin,
fat, fascia and muscle layers, class-specific signs drawn with literature
frequencies, deliberate overlap (``difficulty``), and three simulated
scanners ("hospitals").  Design and sources: the team's notes, shared/docs/phantom.md
(outside this repository).

Modules: ``classes`` (per-class parameters), ``scene`` (tissue maps),
``bmode`` (image formation), ``doppler`` (CDFI), ``display`` (screen, ROI,
overlays), ``scanner`` (hospitals), ``case`` (one case), ``cohorts`` (CSV
cohorts, benchmark); the ``phantom`` command is :mod:`softmass_core.cli.phantom`.
"""

from __future__ import annotations

from softmass_core.data.phantom.case import DEFAULT_DIFFICULTY, PhantomCase, generate_case
from softmass_core.data.phantom.classes import PHANTOM_LABELS
from softmass_core.data.phantom.cohorts import (
    COHORT_PLAN,
    CSV_COLUMNS,
    GENERATOR_VERSION,
    PROVENANCE_NAME,
    benchmark,
    generate_cohorts,
    plan_cases,
    read_provenance,
    rescan_name,
    scaled_counts,
)
from softmass_core.data.phantom.scanner import HOSPITALS

__all__ = [
    "COHORT_PLAN",
    "CSV_COLUMNS",
    "DEFAULT_DIFFICULTY",
    "GENERATOR_VERSION",
    "HOSPITALS",
    "PHANTOM_LABELS",
    "PROVENANCE_NAME",
    "PhantomCase",
    "benchmark",
    "generate_case",
    "generate_cohorts",
    "plan_cases",
    "read_provenance",
    "rescan_name",
    "scaled_counts",
]
