"""Evaluations kept on disk, so that a weight set is scored on a cohort once.

:func:`cached_evaluate` returns :func:`softmass_core.cohorts.evaluate.evaluate`'s
result for a cascade and a cohort, from ``cache_dir`` when it is there and
still valid, else by running the models and storing the result.  The entry's
name is the SHA-256 of its key (:func:`evaluation_key`), which holds
everything the result depends on:

* the weight set: id, version, the SHA-256 of its manifest as loaded and of
  every model file (verified when the set was loaded), the test-time views,
  and the cascade's fusion rule and DLM-1 threshold;
* the cohort: the SHA-256 of the CSV's bytes, the cohorts chosen, and for
  every image its path, size, modification and change times and inode (a
  file rewritten in place, or copied over with its old modification time,
  changes its change time);
* the settings: bootstrap resamples and seed, the device, the versions of
  torch, timm and numpy, and the SHA-256 of the softmass modules that shape
  the numbers (:data:`EVALUATION_MODULES`; a fixed bug never serves its old
  figures).

An entry is one file: a header line (format, key, SHA-256 of the rest) and
the evaluation as JSON.  It is served only when the header parses, its key
equals the one asked for and the rest hashes to the recorded SHA-256;
anything else (truncated, edited, another key, an older format) is
recomputed and replaced.  Writes go to a temporary file in the same folder
and are renamed into place; a file lock per entry makes a second process or
session wait for the first one's result instead of scoring the cohort again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softmass_core.cohorts.cohort import Cohort
from softmass_core.errors import SoftmassError

#: Raised whenever the entry layout changes; older entries are then recomputed.
CACHE_FORMAT = 1
#: Subfolder of the cache root that holds the entries.
SUBDIR = "evaluations"

_EVALUATION_FIELDS = (
    "weight_set_id",
    "weight_set_version",
    "threshold",
    "fusion_rule",
    "metrics",
    "roc",
    "operating_points",
    "n_boot",
    "seed",
    "overlap",
)


@dataclass(frozen=True)
class CacheResult:
    """An evaluation and how it was obtained.

    ``source`` is ``"computed"`` (the models ran) or ``"disk"`` (read from
    the cache); ``entry_id`` names the entry (the key's SHA-256); ``note``
    says why an entry present on disk was not used, or why the result could
    not be stored ("" when there is nothing to say).
    """

    evaluation: Any  # softmass_core.cohorts.evaluate.Evaluation
    source: str
    entry_id: str
    note: str = ""


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: softmass_core modules whose code shapes an evaluation's numbers (reading images and cohorts, scoring,
#: metrics, the stored layout).  A change to any of them recomputes every entry; other modules (the
#: benchmark, the reader study, training, ...) leave the cache alone.
EVALUATION_MODULES = (
    "cohorts/cohort.py",
    "cohorts/evalcache.py",
    "cohorts/evaluate.py",
    "inference/cascade.py",
    "inference/tta.py",
    "io/dicom.py",
    "io/images.py",
    "io/pixels.py",
    "io/roi.py",
    "labels.py",
    "stats/binary.py",
    "stats/counts.py",
    "stats/estimate.py",
    "stats/intervals.py",
    "stats/roc.py",
    "stats/validation.py",
    "weights/manifest.py",
    "weights/models.py",
    "weights/weight_set.py",
)


@functools.cache
def _code_digest() -> str:
    """SHA-256 over the sources of :data:`EVALUATION_MODULES` (names and bytes), once per process."""
    root = Path(__file__).resolve().parent.parent  # softmass_core/
    h = hashlib.sha256()
    for path in (root / name for name in EVALUATION_MODULES):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import numpy
    import timm
    import torch

    return {"torch": torch.__version__, "timm": timm.__version__, "numpy": numpy.__version__}


def _weight_set_key(cascade) -> dict[str, Any]:
    from softmass_core.weights.manifest import sha256_file

    ws = cascade.weight_set
    manifest_text = json.dumps(ws.manifest.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    files = {}
    for model_id, entry in ws.manifest.models.items():
        if ws.verified.get(model_id):  # the bytes the loaded model came from, checked at load
            shas = [sha for _, sha in entry.members]
        else:  # loaded without verification: hash what is on disk now
            shas = [sha256_file(ws.folder / file) for file, _ in entry.members]
        files[model_id] = shas if entry.is_ensemble else shas[0]  # one network: the key it always had
    return {
        "id": ws.id,
        "version": ws.version,
        "manifest_sha256": _sha256_bytes(manifest_text.encode()),
        "model_sha256": files,
        "tta": list(ws.manifest.tta),
        "fusion_rule": cascade.fusion_rule,
        "threshold": float(cascade.threshold),
    }


def _image_stamp(path: Path, root: Path) -> list[Any]:
    st = path.stat()
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = str(path)
    return [name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cohort_key(cohort: Cohort) -> dict[str, Any]:
    csv_path = Path(cohort.csv_path)
    try:
        csv_bytes = csv_path.read_bytes()
    except OSError as exc:
        raise SoftmassError(f"Cannot read the cohort file {csv_path} ({exc.strerror or exc}).") from exc
    root = csv_path.parent.resolve()
    images = []
    try:
        for row in cohort.rows:
            for m in sorted(row.paths):
                images.append(_image_stamp(Path(row.paths[m]), root))
    except OSError as exc:
        raise SoftmassError(
            f"An image of {csv_path} can no longer be read ({exc.strerror or exc}: {exc.filename}); "
            "check the cohort folder."
        ) from exc
    return {
        "csv_sha256": _sha256_bytes(csv_bytes),
        "cohorts": list(dict.fromkeys(r.cohort for r in cohort.rows)),
        "cases": len(cohort.rows),
        "images": images,
    }


def evaluation_key(cascade, cohort: Cohort, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Everything the evaluation of ``cascade`` on ``cohort`` depends on (JSON-safe)."""
    return {
        "format": CACHE_FORMAT,
        "weight_set": _weight_set_key(cascade),
        "cohort": _cohort_key(cohort),
        "settings": {"n_boot": int(n_boot), "seed": int(seed), "device": str(cascade.device)},
        "code_sha256": _code_digest(),
        "versions": _versions(),
    }


def entry_id(key: dict[str, Any]) -> str:
    """The entry's name: SHA-256 of the key's canonical JSON."""
    return _sha256_bytes(json.dumps(key, sort_keys=True, separators=(",", ":")).encode())


def entry_path(cache_dir: str | Path, eid: str) -> Path:
    return Path(cache_dir) / f"{eid}.json"


# --------------------------------------------------------------------------- (de)serialising


def _frame_to_json(df) -> dict[str, Any]:
    return {
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "data": [[_plain(v) for v in row] for row in df.itertuples(index=False, name=None)],
    }


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


def _frame_from_json(obj: dict[str, Any]):
    import pandas as pd

    df = pd.DataFrame(obj["data"], columns=obj["columns"])
    if len(obj["dtypes"]) != len(obj["columns"]):
        raise ValueError("dtypes and columns differ in length")
    for col, dtype in zip(obj["columns"], obj["dtypes"], strict=True):
        df[col] = df[col].astype(dtype)
    return df


def dumps_evaluation(ev) -> bytes:
    """The evaluation as JSON bytes (NaN and infinities kept; Python reads them back)."""
    payload = {name: getattr(ev, name) for name in _EVALUATION_FIELDS}
    payload["predictions"] = _frame_to_json(ev.predictions)
    return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()


def loads_evaluation(data: bytes):
    """Inverse of :func:`dumps_evaluation`."""
    from softmass_core.cohorts.evaluate import Evaluation

    payload = json.loads(data)
    return Evaluation(
        predictions=_frame_from_json(payload["predictions"]),
        **{name: payload[name] for name in _EVALUATION_FIELDS if name in payload},
    )


# --------------------------------------------------------------------------- the cache


def read_entry(path: Path, key: dict[str, Any]):
    """``(evaluation, "")`` from the entry at ``path`` if it is intact and made for ``key``, else
    ``(None, why not)``; ``why`` is "" when there is no entry at all."""
    try:
        with open(path, "rb") as fh:
            header_line = fh.readline()
            body = fh.read()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"the cached entry could not be read ({exc.strerror or exc})"
    try:
        header = json.loads(header_line)
    except ValueError:
        return None, "the cached entry was damaged (unreadable header)"
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        return None, "the cached entry has an older format"
    if header.get("key") != key:
        return None, "the cached entry was made for other inputs"
    if header.get("sha256") != _sha256_bytes(body):
        return None, "the cached entry was damaged (checksum mismatch)"
    try:
        return loads_evaluation(body), ""
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"the cached entry was damaged ({type(exc).__name__})"


def write_entry(path: Path, key: dict[str, Any], ev) -> None:
    """Store ``ev`` at ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    body = dumps_evaluation(ev)
    header = json.dumps({"format": CACHE_FORMAT, "key": key, "sha256": _sha256_bytes(body)}, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header.encode() + b"\n")
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_evaluate(
    cascade,
    cohort: Cohort,
    cache_dir: str | Path,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    on_wait: Callable[[], None] | None = None,
    lookup_only: bool = False,
) -> CacheResult | None:
    """:func:`~softmass_core.cohorts.evaluate.evaluate` of ``cascade`` on ``cohort``, through the cache in ``cache_dir``.

    A valid entry is returned without running any model.  Otherwise the
    models run (``progress`` as for ``evaluate``) and the result is stored.
    While another process or session computes the same entry, this call
    waits for it (``on_wait`` is called once first) and then reads its
    result.  ``lookup_only`` returns None instead of computing.  A cache
    folder that cannot be written does not stop the evaluation: the result
    comes back with a ``note`` saying it was not stored.
    """
    from filelock import FileLock, Timeout

    from softmass_core.cohorts.evaluate import evaluate

    key = evaluation_key(cascade, cohort, n_boot=n_boot, seed=seed)
    eid = entry_id(key)
    folder = Path(cache_dir)
    path = entry_path(folder, eid)
    found, why = read_entry(path, key)
    if found is not None:
        return CacheResult(found, "disk", eid)
    if lookup_only:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
    except OSError as exc:
        ev = evaluate(cascade, cohort, batch_size=batch_size, progress=progress, n_boot=n_boot, seed=seed)
        return CacheResult(ev, "computed", eid, f"not stored: the cache folder {folder} is not writable ({exc})")
    try:
        found, why_now = read_entry(path, key)  # another process may have stored it meanwhile
        if found is not None:
            return CacheResult(found, "disk", eid)
        why = why or why_now
        ev = evaluate(cascade, cohort, batch_size=batch_size, progress=progress, n_boot=n_boot, seed=seed)
        try:
            write_entry(path, key, ev)
        except OSError as exc:
            return CacheResult(ev, "computed", eid, f"not stored in {folder} ({exc.strerror or exc})")
        return CacheResult(ev, "computed", eid, f"recomputed: {why}" if why else "")
    finally:
        lock.release()


def load_entry(cache_dir: str | Path, eid: str):
    """The evaluation stored as entry ``eid`` (its header's key is trusted), or None when absent or damaged."""
    path = entry_path(cache_dir, eid)
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline())
            body = fh.read()
        if header.get("format") != CACHE_FORMAT or entry_id(header["key"]) != eid:
            return None
        if header.get("sha256") != _sha256_bytes(body):
            return None
        return loads_evaluation(body)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
