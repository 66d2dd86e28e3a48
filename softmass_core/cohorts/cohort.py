"""Cohort CSV files: reading and validation.

A cohort is a CSV with one row per case:

=============  ==============================================================
column         meaning
=============  ==============================================================
case_id        unique id of the case (required)
cohort         cohort name, e.g. training, validation, test_a (required)
label          malignant, lipoma, hemangioma, neurinoma, epidermal_cyst,
               calcifying_epithelioma, or benign when the subtype is unknown
gray_path      grayscale B-mode image, relative to the CSV's folder
cdfi_path      CDFI image, relative to the CSV's folder (one of the two paths
               at least)
gray_roi       ``x0,y0,x1,y1`` in that image's pixels (x1, y1 exclusive);
cdfi_roi       empty = the whole image
age, sex       optional (sex: M/F)
=============  ==============================================================

Validation reports every bad row at once, by its line number in the file
(the header is line 1): missing file, unknown label, bad ROI, a path that
leaves the cohort folder, duplicate ids.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from softmass_core.errors import CohortError, RoiError
from softmass_core.io.roi import Roi, parse_roi
from softmass_core.labels import COHORT_LABELS, MODALITIES

REQUIRED_COLUMNS = ("case_id", "cohort", "label")
PATH_COLUMNS = {"gray": "gray_path", "cdfi": "cdfi_path"}
ROI_COLUMNS = {"gray": "gray_roi", "cdfi": "cdfi_roi"}
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


@dataclass(frozen=True)
class CohortRow:
    """One validated case of a cohort."""

    line: int
    case_id: str
    cohort: str
    label: str
    paths: dict[str, Path]
    rois: dict[str, Roi | None]
    age: float | None
    sex: str | None


@dataclass(frozen=True)
class Cohort:
    """A validated cohort CSV."""

    csv_path: Path
    rows: tuple[CohortRow, ...]

    @property
    def names(self) -> list[str]:
        """Cohort names in order of first appearance."""
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.setdefault(r.cohort, None)
        return list(seen)

    def subset(self, names: list[str] | None) -> Cohort:
        if not names:
            return self
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise CohortError(f"{self.csv_path}: no cohort named {unknown}; it has {self.names}.")
        return Cohort(self.csv_path, tuple(r for r in self.rows if r.cohort in names))


def _safe_relative(text: str, root: Path, *, follow_links: bool = True) -> tuple[Path | None, str | None]:
    """``text`` under ``root``; refuse absolute paths and ``..`` escapes.

    The path as written must stay inside ``root``.  A symbolic link inside it
    may point anywhere when ``follow_links`` (a cohort on the server: its
    owner made the link, e.g. to a large read-only dataset); without it the
    link's target must stay inside too.  Uploaded zips never hold links
    (:mod:`softmass_core.cohorts.cohort_zip` refuses them).
    """
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        return None, f"path {text!r} is absolute; give it relative to the CSV's folder"
    base = Path(os.path.normpath(root.absolute()))
    written = Path(os.path.normpath(base / text))
    if written != base and base not in written.parents:
        return None, f"path {text!r} leaves the cohort folder"
    resolved = written.resolve()
    if not follow_links:
        try:
            resolved.relative_to(base.resolve())
        except ValueError:
            return None, f"path {text!r} is a link that leaves the cohort folder"
    return resolved, None


def _image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file header (None for DICOM or unreadable)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def read_cohort(source: str | Path, *, check_files: bool = True, check_rois: bool = True) -> Cohort:
    """Read and validate a cohort CSV; raise :class:`CohortError` listing every bad row."""
    csv_path = Path(source)
    if not csv_path.is_file():
        raise CohortError(f"Cohort file {csv_path} does not exist. Pass the path of a cohort CSV.")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CohortError(f"{csv_path} cannot be read as UTF-8 text ({exc}).") from exc
    return parse_cohort(text, csv_path, check_files=check_files, check_rois=check_rois)


def parse_cohort(text: str, csv_path: Path, *, check_files: bool = True, check_rois: bool = True) -> Cohort:
    """Validate cohort CSV ``text``; paths are relative to ``csv_path``'s folder."""
    root = csv_path.parent
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if not columns:
        raise CohortError(f"{csv_path} is empty: a cohort CSV needs a header row and one row per case.")
    reader.fieldnames = columns
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CohortError(f"{csv_path}: missing column(s) {missing}; the header has {columns}.")
    if not any(PATH_COLUMNS[m] in columns for m in MODALITIES):
        raise CohortError(f"{csv_path}: needs a gray_path and/or a cdfi_path column.")
    problems: list[str] = []
    rows: list[CohortRow] = []
    seen: dict[str, int] = {}
    for offset, raw in enumerate(reader):
        line = offset + 2
        if None in raw:
            problems.append(f"line {line}: more fields than the header has columns")
            continue
        rec = {k: (v or "").strip() for k, v in raw.items()}
        errs: list[str] = []
        case_id = rec.get("case_id", "")
        if not case_id:
            errs.append("case_id is empty")
        elif case_id in seen:
            errs.append(f"case_id {case_id!r} repeats line {seen[case_id]}")
        else:
            seen[case_id] = line
        cohort = rec.get("cohort", "")
        if not cohort:
            errs.append("cohort is empty")
        label = rec.get("label", "").lower()
        if label not in COHORT_LABELS:
            errs.append(f"unknown label {rec.get('label', '')!r} (use one of {', '.join(COHORT_LABELS)})")
        paths: dict[str, Path] = {}
        rois: dict[str, Roi | None] = {}
        for m in MODALITIES:
            text_path = rec.get(PATH_COLUMNS[m], "")
            if not text_path:
                continue
            path, err = _safe_relative(text_path, root)
            if err:
                errs.append(f"{PATH_COLUMNS[m]}: {err}")
                continue
            if check_files and not path.is_file():
                errs.append(f"{PATH_COLUMNS[m]}: file {text_path!r} not found")
                continue
            paths[m] = path
            try:
                roi = parse_roi(rec.get(ROI_COLUMNS[m], ""))
            except RoiError as exc:
                errs.append(f"{ROI_COLUMNS[m]}: {exc}")
                continue
            if roi is not None and check_files and check_rois:
                size = _image_size(path)
                if size is not None:
                    w, h = size
                    if roi.x0 >= w or roi.y0 >= h or roi.x1 <= 0 or roi.y1 <= 0 or roi.width <= 0 or roi.height <= 0:
                        errs.append(f"{ROI_COLUMNS[m]} {roi.as_string()} lies outside the {w}x{h} image")
            rois[m] = roi
        if not paths and not any(e.startswith(("gray_path", "cdfi_path")) for e in errs):
            errs.append("no image: give gray_path and/or cdfi_path")
        age: float | None = None
        if rec.get("age"):
            try:
                age = float(rec["age"])
                if math.isnan(age) or not 0 <= age <= 130:
                    raise ValueError
            except ValueError:
                errs.append(f"age {rec['age']!r} is not a number of years")
        sex = None
        if rec.get("sex"):
            sex = _SEX.get(rec["sex"].lower())
            if sex is None:
                errs.append(f"sex {rec['sex']!r} is not M or F")
        if errs:
            problems.extend(f"line {line} ({case_id or 'no id'}): {e}" for e in errs)
            continue
        rows.append(CohortRow(line, case_id, cohort, label, paths, rois, age, sex))
    if problems:
        raise CohortError(f"{csv_path}: {len(problems)} problem(s); fix these rows:", problems)
    if not rows:
        raise CohortError(f"{csv_path} has a header but no cases.")
    return Cohort(csv_path, tuple(rows))
