"""Read an ultrasound image (PNG, JPEG, BMP, TIFF or DICOM) into an RGB array.

``load_image`` is the one front door.  It accepts a path, raw bytes or a binary
file-like object (Streamlit's ``UploadedFile`` is one; uploads are read in
memory and never written to disk) and returns a :class:`LoadedImage`: an
``(H, W, 3)`` ``uint8`` array plus an :class:`ImageInfo` describing the file.
Nothing that identifies a patient (name, ID, birth date, accession number,
institution, ...) is kept in the returned objects.

Conversion rules, in one place:

* Greyscale is replicated to three channels.
* Transparency (RGBA, LA, palette with transparency) is composited over black,
  the background of an ultrasound screen.
* PNG/TIFF with more than 8 bits per sample (modes ``I;16``, ``I``, ``F``) are
  min-max scaled to 0..255 (a constant image becomes black).
* DICOM greyscale with more than 8 bits stored: the modality rescale
  (RescaleSlope/Intercept) is applied, then the first VOI window
  (WindowCenter/WindowWidth, DICOM PS3.3 C.11.2.1.2.1 linear function) if the
  file has one, otherwise min-max scaling of the chosen frame.  8-bit DICOM
  greyscale is shown as stored.  MONOCHROME1 is inverted after scaling.
* DICOM YBR_FULL and YBR_FULL_422 are converted to RGB by pydicom; PALETTE
  COLOR goes through the palette LUT (16-bit entries scaled to 8 bits); RGB
  with more than 8 bits stored is scaled by ``255 / (2**BitsStored - 1)``.
* Multi-frame DICOM and multi-page TIFF: one frame is decoded (``frame``,
  0-based, the first by default).

Pixel-count guard: ``width * height`` (times the frame count for DICOM) is
checked against ``max_pixels`` from the header, before any pixel data is
decoded.

Decoder chatter: pydicom and Pillow warn (``warnings``) and log (the
``pydicom`` and ``PIL`` loggers) about oddities while they read, e.g. a
corrupt file's "Expected explicit VR, but found implicit VR".  While a file
is read here those are captured, not printed: a bad file gives one
:class:`ImageError` and nothing else on stderr.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from softmass_core.errors import ImageError
from softmass_core.io.pixels import (
    UPLOAD_HINT,
    ImageInfo,
    LoadedImage,
    check_frame,
    check_pixels,
    gray_to_rgb,
    is_dicom,
    minmax_to_uint8,
    unrecognised,
)

#: Largest image accepted, in pixels (DICOM: width * height * frames).
MAX_PIXELS = 40_000_000
#: Largest file accepted, in bytes.
MAX_FILE_BYTES = 512 * 1024 * 1024

#: Formats ``load_image`` reads, as written in ``ImageInfo.format``.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "DICOM")
_PIL_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF")

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]


# --------------------------------------------------------------------------
# Reading the raw bytes
# --------------------------------------------------------------------------


def _too_big_file(n_bytes: int) -> ImageError:
    return ImageError(
        f"The file is too large ({n_bytes / 2**20:.0f} MiB; the limit is "
        f"{MAX_FILE_BYTES / 2**20:.0f} MiB). Export a single frame as PNG and upload that."
    )


def _read_source(source: ImageSource, name: str | None) -> tuple[bytes, str | None]:
    """Return the file's bytes and a name (for the extension) if one is known."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name or os.path.basename(path)
        try:
            size = os.path.getsize(path)
            if size > MAX_FILE_BYTES:
                raise _too_big_file(size)
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ImageError(
                f"Could not read the image file {path!r}: {exc.strerror or exc}. "
                "Check that the path exists and is a readable file."
            ) from exc
    elif hasattr(source, "read"):
        if name is None:
            raw_name = getattr(source, "name", None)
            name = raw_name if isinstance(raw_name, str) else None
        try:
            getvalue = getattr(source, "getvalue", None)
            if callable(getvalue):
                # BytesIO / UploadedFile: the whole content, whatever the
                # position left by an earlier read (Streamlit reruns).
                data = bytes(getvalue())
            elif source.seekable():
                pos = source.tell()
                source.seek(0)
                data = source.read(MAX_FILE_BYTES + 1)
                source.seek(pos)
            else:
                data = source.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise ImageError(f"Could not read the uploaded file: {exc}. Upload it again.") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError("The file object returned text, not bytes. Open the file in binary mode ('rb').")
        data = bytes(data)
    else:
        raise ImageError(
            f"Cannot read an image from a {type(source).__name__}; pass a path, bytes or a binary file object."
        )
    if len(data) > MAX_FILE_BYTES:
        raise _too_big_file(len(data))
    return data, name


def _has_dcm_suffix(name: str | None) -> bool:
    return bool(name) and name.lower().endswith((".dcm", ".dicom"))


# --------------------------------------------------------------------------
# Pillow formats
# --------------------------------------------------------------------------

_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow open images up to ``max_pixels`` for the duration of the block.

    Pillow refuses images above ``2 * Image.MAX_IMAGE_PIXELS`` at open time.
    When our own ``max_pixels`` is larger, the limit is raised under a lock
    and restored afterwards; it is never lowered (other threads share it).
    Our own check against ``max_pixels`` runs after the header is read.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None or max_pixels <= current:
        yield
        return
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite an ``(H, W, 4)`` uint8 image over black."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to ``(H, W, 3)`` uint8."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        return _flatten_alpha(np.asarray(im.convert("RGBA")))
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode == "L":
        return gray_to_rgb(np.asarray(im))
    if mode in ("I", "F") or mode.startswith("I;16"):
        return gray_to_rgb(minmax_to_uint8(np.asarray(im)))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8)  # a writeable copy (np.asarray would be read-only)


def _load_pillow(data: bytes, frame: int, max_pixels: int) -> LoadedImage:
    try:
        with _pillow_pixel_limit(max_pixels), Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS)) as im:
            fmt = "JPEG" if im.format == "MPO" else str(im.format)
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            check_frame(frame, n_frames)
            if frame:
                im.seek(frame)
            width, height = im.size
            check_pixels(width, height, 1, max_pixels)
            mode = im.mode
            im.load()
            rgb = _pil_to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise unrecognised(data) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"The image is too large to decode safely ({exc}). Crop or downscale it and upload it again."
        ) from exc
    except MemoryError as exc:
        raise ImageError("Not enough memory to decode this image. Downscale it and upload it again.") from exc
    except Exception as exc:  # truncated data, bad chunks, decoder errors
        raise ImageError(
            f"The image file is truncated or corrupt and could not be decoded ({exc}). "
            f"Re-export it from the ultrasound system. {UPLOAD_HINT}"
        ) from exc
    info = ImageInfo(
        format=fmt,
        width=int(width),
        height=int(height),
        n_frames=n_frames,
        frame=int(frame),
        modality=None,
        photometric=mode,
    )
    return LoadedImage(rgb=rgb, info=info)


# --------------------------------------------------------------------------
# Keeping the decoders quiet
# --------------------------------------------------------------------------

_QUIET = threading.local()
_WARNINGS_LOCK = threading.RLock()
_DECODER_LOGGERS = ("pydicom", "PIL")


class _DropWhileReading(logging.Filter):
    """Drops the decoders' log records emitted by a thread that is inside :func:`_quiet_decoders`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_QUIET, "depth", 0)


_DROP_WHILE_READING = _DropWhileReading()
for _name in _DECODER_LOGGERS:
    logging.getLogger(_name).addFilter(_DROP_WHILE_READING)


#: Modules whose warnings are silenced while a file is read (pydicom and Pillow
#: warnings are attributed to their own modules, or to this one as the caller).
_QUIET_MODULES = r"(pydicom|PIL)(\.|$)|softmass_core\.(images|dicom)$"


@contextmanager
def _quiet_decoders() -> Iterator[None]:
    """Silence pydicom's and Pillow's warnings and log records for the duration of the block.

    Log records are dropped by a logger filter that looks at a per-thread
    flag (other threads keep logging).  Warnings are ignored by a filter on
    the modules they come from, so other code's warnings still show;
    ``warnings.catch_warnings`` swaps process-wide state, so its use here is
    serialised by a lock.
    """
    _QUIET.depth = getattr(_QUIET, "depth", 0) + 1
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_QUIET_MODULES)
            yield
    finally:
        _QUIET.depth -= 1


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_image(
    source: ImageSource,
    *,
    frame: int = 0,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
) -> LoadedImage:
    """Decode an image file into ``(H, W, 3)`` uint8 RGB.

    ``source`` is a path, raw bytes, or a binary file-like object (read in
    memory, never written to disk).  ``frame`` is the 0-based frame of a
    multi-frame DICOM or multi-page TIFF.  ``name`` is the original file
    name, used only for its extension (a preamble-less DICOM is tried when it
    ends in ``.dcm``).  Raises :class:`ImageError` (or
    :class:`DecoderMissingError`) with a message saying what to do.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise ImageError(f"max_pixels must be a positive integer, got {max_pixels!r}.")
    if max_pixels <= 0:
        raise ImageError(f"max_pixels must be a positive integer, got {max_pixels!r}.")
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise ImageError(f"Frame index must be an integer, got {frame!r}.")
    data, name = _read_source(source, name)
    if not data:
        raise ImageError(f"The file is empty (0 bytes). {UPLOAD_HINT}")
    with _quiet_decoders():
        if is_dicom(data):
            return _dicom().load_dicom(data, int(frame), int(max_pixels), force=False)
        if _has_dcm_suffix(name):
            try:
                Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS)).close()
            except Exception:
                # Not a Pillow image: try it as a DICOM without the 128-byte preamble.
                return _dicom().load_dicom(data, int(frame), int(max_pixels), force=True)
        return _load_pillow(data, int(frame), int(max_pixels))


def dicom_safe_metadata(source: ImageSource, *, name: str | None = None) -> dict[str, Any]:
    """Whitelisted, non-identifying DICOM attributes (see :data:`softmass_core.io.dicom.SAFE_DICOM_KEYWORDS`).

    Pixel data is not read.  Values are plain ``str``/``int``/``float`` (lists
    for multi-valued attributes); UIDs are given by name; absent attributes
    are omitted.  Raises :class:`ImageError` if the source is not DICOM.
    """
    data, name = _read_source(source, name)
    if not data:
        raise ImageError(f"The file is empty (0 bytes). {UPLOAD_HINT}")
    if not (is_dicom(data) or _has_dcm_suffix(name)):
        raise ImageError("The file is not a DICOM file (no 'DICM' marker at byte 128).")
    with _quiet_decoders():
        return _dicom().safe_metadata(data)


def _dicom():
    """:mod:`softmass_core.io.dicom`, imported on the first DICOM file.

    pydicom costs about 0.7 s to import; a PNG or a simulated case (the app's
    first page) should not pay for it.
    """
    from softmass_core.io import dicom

    return dicom
