"""What both decoders (Pillow in :mod:`softmass_core.io.images`, pydicom in :mod:`softmass_core.io.dicom`) share.

The decoded image and its description, the size and frame checks made from
a header before any pixel is decoded, the scaling of deep pixel values to 8
bits, and the messages for files that are not images.  It imports neither
decoder, so :mod:`softmass_core.io.dicom` (and pydicom) loads only on the first
DICOM file without an import cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from softmass_core.errors import ImageError

UPLOAD_HINT = "Upload a PNG, JPEG, BMP, TIFF or DICOM file."


@dataclass(frozen=True)
class ImageInfo:
    """What was read: never any patient identifier.

    ``format`` is one of :data:`FORMATS`; ``width``/``height`` in pixels of
    one frame; ``frame`` the 0-based frame decoded out of ``n_frames``;
    ``modality`` the DICOM Modality (e.g. ``"US"``) or None; ``photometric``
    the DICOM PhotometricInterpretation or the Pillow mode of the file;
    ``transfer_syntax`` (name of the DICOM transfer syntax) and
    ``manufacturer`` are None for non-DICOM files.
    """

    format: str
    width: int
    height: int
    n_frames: int
    frame: int
    modality: str | None
    photometric: str
    transfer_syntax: str | None = None
    manufacturer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of the fields."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``rgb`` is ``(H, W, 3)`` ``uint8``."""

    rgb: np.ndarray
    info: ImageInfo


def is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def check_frame(frame: int, n_frames: int) -> None:
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise ImageError(f"Frame index must be an integer, got {frame!r}.")
    if not 0 <= frame < n_frames:
        valid = "0" if n_frames == 1 else f"0 to {n_frames - 1}"
        raise ImageError(
            f"Frame {frame} is out of range: this image has {n_frames} "
            f"frame{'s' if n_frames != 1 else ''} (valid frame indices: {valid})."
        )


def check_pixels(width: int, height: int, n_frames: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(
            f"The image header gives an empty size ({width} x {height} pixels); the file is corrupt. {UPLOAD_HINT}"
        )
    total = width * height * n_frames
    if total > max_pixels:
        frames = f" x {n_frames} frames" if n_frames > 1 else ""
        raise ImageError(
            f"The image is too large: {width} x {height} pixels{frames} = {total:,} "
            f"pixels, above the limit of {max_pixels:,}. Crop or downscale the image "
            "(or export a single frame) and upload it again."
        )


OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF8", 0, "GIF"),
    (b"WEBP", 8, "WebP"),
    (b"%PDF", 0, "PDF"),
    (b"PK\x03\x04", 0, "ZIP"),
)


def minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any numeric 2-D/3-D array to 0..255 by its finite min and max."""
    a = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, dtype=np.uint8)
    lo = float(a[finite].min())
    hi = float(a[finite].max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    out = (np.where(finite, a, lo) - lo) * (255.0 / (hi - lo))
    return np.rint(out).astype(np.uint8)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def unrecognised(data: bytes) -> ImageError:
    for magic, offset, fmt in OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return ImageError(f"{fmt} files are not supported. {UPLOAD_HINT}")
    head = data[:512]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return ImageError(f"The file contains text, not an image. {UPLOAD_HINT}")
    return ImageError(
        "The file is not a recognised image: it is not a PNG, JPEG, BMP, TIFF or "
        f"DICOM file, or its header is damaged. {UPLOAD_HINT}"
    )
