"""Output folders: made once, up front, with a message instead of a traceback when they cannot be."""

from __future__ import annotations

from pathlib import Path

from softmass_core.errors import SoftmassError


def make_dir(path: str | Path, what: str) -> Path:
    """Create the folder ``path`` and its parents; ``what`` names it in the error (e.g. ``"--out"``).

    Commands call this before their long work starts, so that a path that names a
    file, or a folder without write access, is refused before anything is computed.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SoftmassError(f"{what} {folder} is a file, not a folder: pass a folder path.") from None
    except OSError as e:
        raise SoftmassError(f"{what} {folder} cannot be created ({e.strerror}): pass a writable folder.") from None
    return folder
