"""Safe extraction of an uploaded cohort zip (a cohort CSV and its images).

The dashboard lets a user upload a zip holding one cohort CSV (see
:mod:`softmass_core.cohorts.cohort`) and the images it names, with paths relative to
the CSV.  An upload is untrusted, so before anything is written the archive
is checked as a whole and refused, with a :class:`CohortError` saying why,
when

* an entry name is absolute (``/x``, ``\\x``, ``C:x``), contains ``..``, a
  NUL byte, or repeats another entry;
* an entry is a symbolic link, or is encrypted;
* there are more than ``max_files`` files, or their declared uncompressed
  sizes add up to more than ``max_total_bytes``;
* an entry, or the archive as a whole, expands more than ``max_ratio`` times
  (a "zip bomb");
* it holds no ``*.csv`` file, or more than one.

Entries are then streamed to disk with a byte counter, so an entry whose
header understates its size still cannot write more than the limits allow.
Nothing is ever written outside ``dest``.  macOS metadata (``__MACOSX/`` and
``._*`` files) is skipped.

Messages name files as the user knows them: errors raised while the
extracted cohort is read or evaluated carry server paths (the extraction
folder under the app's cache); :func:`name_in_zip` and :func:`named_in_zip`
rewrite them as ``cohort.csv in my_cohort.zip``, the file's name inside the
user's zip.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from softmass_core.errors import CohortError, SoftmassError

MAX_FILES = 5000
MAX_TOTAL_BYTES = 500 * 1024 * 1024
MAX_RATIO = 100.0
#: Entries smaller than this are not ratio-checked on their own (tiny files
#: compress unpredictably); the whole archive's ratio still is.
RATIO_MIN_BYTES = 1024 * 1024
_CHUNK = 1 << 16


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store")


def _check_name(raw: str) -> str:
    """The entry's name as a relative POSIX path, or CohortError."""
    if "\x00" in raw:
        raise CohortError(f"The zip entry {raw!r} has a NUL byte in its name; the archive is not usable.")
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise CohortError(
            f"The zip entry {raw!r} has an absolute path. Zip the cohort folder with paths relative to it."
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CohortError(f"The zip entry {raw!r} contains '..' and would leave the extraction folder; refused.")
    if not parts:
        raise CohortError(f"The zip entry {raw!r} has an empty name.")
    return "/".join(parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def _plan(
    archive: zipfile.ZipFile, *, max_files: int, max_total_bytes: int, max_ratio: float
) -> tuple[list[tuple[zipfile.ZipInfo, str]], str]:
    """Validate every entry; return (entry, safe name) for the files, and the CSV's name."""
    files: list[tuple[zipfile.ZipInfo, str]] = []
    seen: set[str] = set()
    total = 0
    packed = 0
    for info in archive.infolist():
        if _is_junk(info.filename.replace("\\", "/")):
            continue
        name = _check_name(info.filename)
        if _is_symlink(info):
            raise CohortError(f"The zip entry {info.filename!r} is a symbolic link; links are refused.")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise CohortError(f"The zip entry {info.filename!r} is encrypted; upload an unencrypted zip.")
        key = name.lower()
        if key in seen:
            raise CohortError(f"The zip holds {info.filename!r} twice; every file must appear once.")
        seen.add(key)
        files.append((info, name))
        if len(files) > max_files:
            raise CohortError(
                f"The zip holds more than {max_files} files; split the cohort or raise the limit (max_files)."
            )
        total += info.file_size
        packed += info.compress_size
        if total > max_total_bytes:
            raise CohortError(
                f"The zip expands to more than {max_total_bytes / 2**20:.0f} MiB; upload a smaller cohort "
                "or give the folder's path on the server instead."
            )
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            raise CohortError(
                f"The zip entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} "
                f"times (limit {max_ratio:g}); this looks like a zip bomb and is refused."
            )
    if total >= RATIO_MIN_BYTES and total > max_ratio * max(packed, 1):
        raise CohortError(
            f"The zip expands {total / max(packed, 1):.0f} times overall (limit {max_ratio:g}); "
            "this looks like a zip bomb and is refused."
        )
    csvs = [name for _, name in files if name.lower().endswith(".csv")]
    if len(csvs) != 1:
        found = f"found {len(csvs)}: {', '.join(csvs[:5])}" if csvs else "found none"
        raise CohortError(
            f"A cohort zip must hold exactly one .csv file (the cohort table) next to its images; {found}."
        )
    return files, csvs[0]


def extract_cohort_zip(
    data: bytes | BinaryIO,
    dest: str | Path,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Check an uploaded cohort zip, extract it into ``dest`` and return the CSV's path.

    ``data`` is the zip's bytes or a binary file-like object.  ``dest`` must
    not exist yet or be an empty folder.  Limits: ``max_files`` files,
    ``max_total_bytes`` uncompressed bytes in all, ``max_ratio`` expansion
    (uncompressed / compressed).  Raises :class:`CohortError` with the reason
    (see the module docstring); on a failure part-way, what was written to
    ``dest`` is removed.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CohortError(f"Cannot extract the cohort zip into {dest}: it exists and is not an empty folder.")
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CohortError(
            f"The upload is not a readable zip file ({exc}). Zip the cohort folder and try again."
        ) from exc
    with archive:
        files, csv_name = _plan(archive, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        try:
            written = 0
            for info, name in files:
                target = (root / name).resolve()
                if not target.is_relative_to(root):  # defence in depth; _check_name already refused
                    raise CohortError(f"The zip entry {info.filename!r} would leave the extraction folder; refused.")
                target.parent.mkdir(parents=True, exist_ok=True)
                left = info.file_size
                with archive.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        left -= len(chunk)
                        written += len(chunk)
                        if left < 0 or written > max_total_bytes:
                            raise CohortError(
                                f"The zip entry {info.filename!r} holds more data than its header says; refused."
                            )
                        out.write(chunk)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            zlib.error,
            NotImplementedError,
            EOFError,
            RuntimeError,
            OSError,
        ) as exc:
            _clean(dest, created)
            raise CohortError(f"The zip could not be extracted ({exc}). Re-create it and try again.") from exc
        except BaseException:
            _clean(dest, created)
            raise
    return root / csv_name


def _clean(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
    else:
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


# --------------------------------------------------------------------------- naming files as the user knows them


def _spellings(folder: str | os.PathLike[str]) -> list[str]:
    """The ways a path under ``folder`` may be written in a message (as given and resolved), longest first."""
    forms = {os.fspath(folder), str(Path(folder).absolute()), str(Path(folder).resolve())}
    return sorted((f.rstrip("/\\") for f in forms if f.rstrip("/\\")), key=len, reverse=True)


def name_in_zip(text: str, folders: Mapping[str | os.PathLike[str], str], *, uploads_root=None) -> str:
    """``text`` with every server path of an extracted upload written as the user knows the file.

    ``folders`` maps an extraction folder to the zip's name as uploaded, e.g.
    ``{".../cache/uploads/3fa9c2": "my_cohort.zip"}``: the path
    ``.../cache/uploads/3fa9c2/study/cohort.csv`` becomes
    ``study/cohort.csv in my_cohort.zip`` and the folder itself
    ``my_cohort.zip``.  Paths under ``uploads_root`` (the folder holding every
    extraction) whose zip is not in ``folders`` become ``... in the uploaded
    zip``, so no server path is shown either way.

    >>> name_in_zip("/srv/cache/uploads/ab12/cohort.csv: 2 problem(s)", {"/srv/cache/uploads/ab12": "mine.zip"})
    'cohort.csv in mine.zip: 2 problem(s)'
    """
    rules: list[tuple[str, str | None]] = [
        (form, name) for folder, name in folders.items() for form in _spellings(folder)
    ]
    if uploads_root is not None:
        rules += [(form, None) for form in _spellings(uploads_root)]
    rules.sort(key=lambda rule: len(rule[0]), reverse=True)  # a longer (deeper) folder first
    for form, name in rules:
        text = _path_pattern(form).sub(lambda match, name=name: _as_in_zip(match, name), text)
    return text


def _path_pattern(folder: str) -> re.Pattern[str]:
    """``folder`` and an optional relative path after it.

    In quotes (``'...'``, as ``repr`` writes a path) the path runs to the
    closing quote; in running text it runs to the next space and leaves out
    trailing punctuation (``cohort.csv: 2 problems``).
    """
    return re.compile(
        r"(?P<q>['\"])?"
        + re.escape(folder)
        + r"(?:[/\\](?P<rel>(?(q)[^'\"]*|[^\s'\"]*[^\s'\".,:;)\]])))?"
        + r"(?![^\s'\"/\\.,:;)\]])"
    )


def _as_in_zip(match: re.Match[str], name: str | None) -> str:
    """``rel in name.zip`` for one matched path (``name`` None: an upload's folder under the uploads root)."""
    rel = (match.group("rel") or "").replace("\\", "/").strip("/")
    if name is None:  # the first part is the extraction folder (the zip's hash): not the user's name
        rel = rel.split("/", 1)[1] if "/" in rel else ""
        name = "the uploaded zip"
    return (match.group("q") or "") + (f"{rel} in {name}" if rel else name)


@contextmanager
def named_in_zip(folders: Mapping[str | os.PathLike[str], str], *, uploads_root=None) -> Iterator[None]:
    """Re-raise any :class:`SoftmassError` from the block with its paths named by :func:`name_in_zip`.

    The error keeps its class (a :class:`CohortError` its ``problems``, renamed too).
    """
    try:
        yield
    except SoftmassError as exc:
        rename_paths_in_error(exc, folders, uploads_root=uploads_root)
        raise


def rename_paths_in_error(
    exc: SoftmassError, folders: Mapping[str | os.PathLike[str], str], *, uploads_root=None
) -> SoftmassError:
    """``exc`` itself, its message (and a :class:`CohortError`'s ``problems``) renamed by :func:`name_in_zip`."""
    exc.args = tuple(name_in_zip(a, folders, uploads_root=uploads_root) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, CohortError):
        exc.problems = [name_in_zip(p, folders, uploads_root=uploads_root) for p in exc.problems]
    return exc
