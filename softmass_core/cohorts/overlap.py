"""Which evaluation images a weight set has already seen: training and validation images by content.

A fine-tune evaluated on its own training cases looks excellent and means
nothing.  A weight set therefore records the sha256 of every image it was
trained on and every image its thresholds were chosen on, in a small text
file listed in the manifest (``training.image_digests``: file, sha256,
counts).  :func:`cohort_overlap` hashes a cohort's images and counts, per
cohort, the images and cases found there; evaluation marks those cohorts'
metrics as not independent.  Matching is by file content, so a copied or
renamed image is still found; a re-encoded one (another PNG compressor, a
JPEG) is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from softmass_core.errors import WeightsError

DIGESTS_FILE = "image_digests.tsv"
ROLES = ("training", "validation")


def image_hashes(cohort) -> dict[str, list[str]]:
    """``{case_id: [sha256 of each of its images]}``: hash a cohort once, compare it with any number of sets."""
    from softmass_core.weights.manifest import sha256_file

    return {row.case_id: [sha256_file(p) for p in row.paths.values()] for row in cohort.rows}


def cohort_digests(cohort, names: Iterable[str]) -> set[str]:
    """sha256 of every image of the cases of cohorts ``names``."""
    from softmass_core.weights.manifest import sha256_file

    keep = set(names)
    return {sha256_file(p) for row in cohort.rows if row.cohort in keep for p in row.paths.values()}


def write_digests(folder: str | Path, cohort, train_cohorts: Iterable[str], val_cohort: str) -> dict[str, Any]:
    """Write ``folder/image_digests.tsv`` (role, sha256 per line, sorted) and return its manifest entry."""
    from softmass_core.weights.manifest import sha256_file

    roles = {"training": cohort_digests(cohort, train_cohorts), "validation": cohort_digests(cohort, [val_cohort])}
    lines = [f"{role}\t{sha}" for role in ROLES for sha in sorted(roles[role])]
    path = Path(folder) / DIGESTS_FILE
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return {
        "file": DIGESTS_FILE,
        "sha256": sha256_file(path),
        "n_training": len(roles["training"]),
        "n_validation": len(roles["validation"]),
        "how": "sha256 of each image file's bytes",
    }


def read_digests(folder: str | Path, entry: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``{sha256: role}`` of a set (None when it records none); a file that fails its sha256 is an error."""
    from softmass_core.weights.manifest import sha256_file

    if not entry:
        return None
    path = Path(folder) / str(entry.get("file", DIGESTS_FILE))
    if not path.is_file() or sha256_file(path) != entry.get("sha256"):
        raise WeightsError(
            f"{path} is missing or does not match its sha256 in the manifest (training.image_digests): "
            "restore it, or re-record it with retune."
        )
    out: dict[str, str] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        role, _, sha = line.partition("\t")
        if role in ROLES and len(sha) == 64:
            out.setdefault(sha, role)  # an image in both counts as training
    return out


def cohort_overlap(
    cohort, digests: Mapping[str, str], hashes: Mapping[str, list[str]] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Per cohort ``{"n_images", "n_cases", "n_training", "n_validation", "n_cases_seen", "independent"}``,
    and ``{case_id: role}`` for each case with an image the set has seen (training wins over validation).

    ``hashes`` (:func:`image_hashes` of ``cohort``) saves hashing the images again."""
    hashes = image_hashes(cohort) if hashes is None else hashes
    per_cohort: dict[str, dict[str, Any]] = {}
    seen_cases: dict[str, str] = {}
    for row in cohort.rows:
        entry = per_cohort.setdefault(
            row.cohort, {"n_images": 0, "n_cases": 0, "n_training": 0, "n_validation": 0, "n_cases_seen": 0}
        )
        entry["n_cases"] += 1
        roles = []
        for sha in hashes[row.case_id]:
            entry["n_images"] += 1
            role = digests.get(sha)
            if role:
                entry[f"n_{role}"] += 1
                roles.append(role)
        if roles:
            entry["n_cases_seen"] += 1
            seen_cases[row.case_id] = "training" if "training" in roles else "validation"
    for entry in per_cohort.values():
        entry["independent"] = entry["n_training"] == 0 and entry["n_validation"] == 0
    return per_cohort, seen_cases


def overlap_sentence(cohort: str, entry: Mapping[str, Any]) -> str:
    """One line for a cohort whose images the set has seen ("" when it is independent)."""
    if entry.get("independent", True):
        return ""
    parts = []
    if entry["n_training"]:
        parts.append(f"{entry['n_training']} of its {entry['n_images']} images were training images")
    if entry["n_validation"]:
        parts.append(f"{entry['n_validation']} chose the thresholds (validation)")
    return (
        f"{cohort}: not independent of this weight set: " + " and ".join(parts) + f" ({entry['n_cases_seen']} of "
        f"{entry['n_cases']} cases). Its metrics flatter the set; do not report them as a test."
    )


def set_overlap(
    weight_set, cohort, hashes: Mapping[str, list[str]] | None = None
) -> tuple[dict[str, dict[str, Any]] | None, dict[str, str]]:
    """:func:`cohort_overlap` of ``weight_set``'s recorded images on ``cohort``; ``(None, {})`` when it records none."""
    digests = read_digests(weight_set.folder, (weight_set.manifest.raw.get("training") or {}).get("image_digests"))
    if digests is None:
        return None, {}
    return cohort_overlap(cohort, digests, hashes)
