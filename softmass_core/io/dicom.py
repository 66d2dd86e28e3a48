"""DICOM reading for :func:`softmass_core.io.images.load_image` (pydicom), kept apart so other formats never import pydicom.

The conversion rules are listed in :mod:`softmass_core.io.images`; this module
holds the decoder table, the VOI window, the frame decoding and the
whitelisted metadata.  Callers go through :mod:`softmass_core.io.images`, which
imports this module on the first DICOM file and keeps the decoders quiet.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pydicom
import pydicom.pixels
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset

from softmass_core.errors import DecoderMissingError, ImageError
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

# --------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
_INSTALL_HINTS: dict[str, str] = {
    dicom_uid.JPEGBaseline8Bit: _LIBJPEG,
    dicom_uid.JPEGExtended12Bit: _LIBJPEG,
    dicom_uid.JPEGLossless: _LIBJPEG,
    dicom_uid.JPEGLosslessSV1: _LIBJPEG,
    dicom_uid.JPEGLSLossless: _LIBJPEG,
    dicom_uid.JPEGLSNearLossless: _LIBJPEG,
    dicom_uid.JPEG2000Lossless: _OPENJPEG,
    dicom_uid.JPEG2000: _OPENJPEG,
    dicom_uid.HTJ2KLossless: _OPENJPEG,
    dicom_uid.HTJ2KLosslessRPCL: _OPENJPEG,
    dicom_uid.HTJ2K: _OPENJPEG,
    dicom_uid.RLELossless: "pip install pylibjpeg pylibjpeg-rle",
}

#: DICOM attributes that ``dicom_safe_metadata`` may return (none identifies a patient).
SAFE_DICOM_KEYWORDS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "SOPClassUID",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "WindowCenter",
    "WindowWidth",
    "RescaleSlope",
    "RescaleIntercept",
    "BodyPartExamined",
    "UltrasoundColorDataPresent",
    "FrameTime",
)


def _decoder_available(ts: dicom_uid.UID) -> bool:
    """True if pydicom has a working decoder plugin for transfer syntax ``ts``."""
    try:
        return bool(pydicom.pixels.get_decoder(ts).is_available)
    except NotImplementedError:
        return False


def _ts_label(ts: dicom_uid.UID) -> str:
    name = ts.name if ts.name != str(ts) else "unknown transfer syntax"
    return f"'{name}' ({ts})"


def _decoder_missing(ts: dicom_uid.UID) -> DecoderMissingError:
    hint = _INSTALL_HINTS.get(str(ts))
    if hint is None:
        return DecoderMissingError(
            f"This DICOM file uses the transfer syntax {_ts_label(ts)}, which this app "
            "cannot decode (video and other unusual encodings are not supported). Export "
            "the frame uncompressed or as PNG from the ultrasound system."
        )
    return DecoderMissingError(
        f"This DICOM file is compressed with {_ts_label(ts)} and no decoder for it is "
        f"installed. Install one with `{hint}` and restart the app, or export the "
        "image uncompressed or as PNG."
    )


def _read_dataset(data: bytes, *, force: bool, stop_before_pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=force, stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise ImageError(
            f"The DICOM file is truncated or corrupt and could not be parsed ({exc}). "
            f"Re-export it from the ultrasound system. {UPLOAD_HINT}"
        ) from exc
    if not hasattr(ds, "file_meta"):
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        # Preamble-less file: use the encoding it was actually read with.
        implicit, little = ds.original_encoding
        if implicit:
            ds.file_meta.TransferSyntaxUID = dicom_uid.ImplicitVRLittleEndian
        elif little:
            ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
        else:
            ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRBigEndian
    return ds


def _first_number(value: Any) -> float | None:
    """First value of a (possibly multi-valued) DICOM number, or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _window_to_uint8(arr: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear VOI function, output 0..255."""
    x = np.asarray(arr, dtype=np.float64)
    if width <= 1.0:
        return np.where(x <= center - 0.5, 0, 255).astype(np.uint8)
    y = (x - (center - 0.5)) / (width - 1.0) + 0.5
    return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def _dicom_gray_to_uint8(arr: np.ndarray, ds: Dataset, bits_stored: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits_stored == 8:
        return arr
    x = np.asarray(arr, dtype=np.float64)
    slope = _first_number(ds.get("RescaleSlope"))
    intercept = _first_number(ds.get("RescaleIntercept"))
    if slope is not None or intercept is not None:
        x = x * (1.0 if slope is None else slope) + (intercept or 0.0)
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        return _window_to_uint8(x, center, width)
    return minmax_to_uint8(x)


def _plain_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:64] or None


def load_dicom(data: bytes, frame: int, max_pixels: int, force: bool) -> LoadedImage:
    ds = _read_dataset(data, force=force, stop_before_pixels=False)
    if force and "Rows" not in ds:
        # A forced read of something that is not DICOM parses as junk elements.
        raise unrecognised(data)
    if not any(kw in ds for kw in _PIXEL_KEYWORDS) and not any(kw in ds for kw in ("SOPClassUID", "Rows")):
        # Nothing a DICOM image or document holds: the bytes after the marker are not DICOM.
        raise ImageError(
            "The file has a DICOM marker but its contents could not be read as DICOM (no image size, "
            "no kind of object, no pixel data): it is corrupt or not a DICOM file. Re-export it from the "
            f"ultrasound system. {UPLOAD_HINT}"
        )
    if not any(kw in ds for kw in _PIXEL_KEYWORDS):
        raise ImageError(
            "The DICOM file has no pixel data (it may be a report or a structured "
            "document, not an image). Upload the DICOM image itself."
        )
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    except Exception as exc:
        raise ImageError(
            "The DICOM file lacks a readable image size (Rows, Columns) or pixel "
            f"description ({exc}). Re-export it from the ultrasound system."
        ) from exc
    check_frame(frame, max(n_frames, 1))
    check_pixels(cols, rows, max(n_frames, 1), max_pixels)

    ts = dicom_uid.UID(str(ds.file_meta.TransferSyntaxUID))
    if ts.is_compressed and not _decoder_available(ts):
        raise _decoder_missing(ts)

    try:
        arr = pydicom.pixels.pixel_array(ds, index=frame if n_frames > 1 else None)
        if arr.ndim == 3 and samples == 1 and arr.shape[0] == 1:
            arr = arr[0]
        if photometric == "PALETTE COLOR":
            arr = pydicom.pixels.apply_color_lut(arr, ds)
            if arr.dtype != np.uint8:
                arr = np.rint(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
            rgb = arr
        elif samples == 1:
            gray = _dicom_gray_to_uint8(arr, ds, bits_stored)
            if photometric == "MONOCHROME1":
                gray = 255 - gray
            rgb = gray_to_rgb(gray)
        else:
            # RGB, or YBR_* already converted to RGB by pydicom (raw=False).
            if arr.dtype != np.uint8 or bits_stored != 8:
                top = float(2**bits_stored - 1)
                arr = np.rint(np.clip(arr.astype(np.float64), 0, top) * (255.0 / top))
                arr = arr.astype(np.uint8)
            rgb = arr
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(
            "Not enough memory to decode this DICOM image. Export a single frame and upload it again."
        ) from exc
    except Exception as exc:
        hint = ""
        if ts.is_compressed:
            hint = (
                f" It is compressed with {_ts_label(ts)}; if other viewers open it, "
                f"installing another decoder may help (`{_INSTALL_HINTS.get(str(ts), _LIBJPEG)}`)."
            )
        raise ImageError(
            f"The DICOM pixel data could not be decoded ({exc}).{hint} "
            "Re-export the image from the ultrasound system, or as PNG."
        ) from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != (rows, cols):
        raise ImageError(
            f"The DICOM pixel data decoded to an unexpected shape {rgb.shape} for "
            f"{photometric} with {samples} sample(s) per pixel. Export the image as PNG."
        )
    info = ImageInfo(
        format="DICOM",
        width=cols,
        height=rows,
        n_frames=max(n_frames, 1),
        frame=int(frame),
        modality=_plain_str(ds.get("Modality")),
        photometric=photometric,
        transfer_syntax=ts.name,
        manufacturer=_plain_str(ds.get("Manufacturer")),
    )
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    return LoadedImage(rgb=rgb, info=info)


def safe_metadata(data: bytes) -> dict[str, Any]:
    """Whitelisted attributes of the DICOM file ``data`` (see :func:`softmass_core.io.images.dicom_safe_metadata`)."""
    has_preamble = is_dicom(data)
    ds = _read_dataset(data, force=not has_preamble, stop_before_pixels=True)
    if not has_preamble and "SOPClassUID" not in ds and "Rows" not in ds:
        raise ImageError("The file is not a DICOM file (it could not be parsed as DICOM).")
    out: dict[str, Any] = {}
    for keyword in SAFE_DICOM_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:
            continue
        if value is None or value == "":
            continue
        out[keyword] = _plain_value(value)
    out["TransferSyntaxUID"] = dicom_uid.UID(str(ds.file_meta.TransferSyntaxUID)).name
    return out


def _plain_value(value: Any) -> Any:
    if isinstance(value, dicom_uid.UID):
        return value.name
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain_value(v) for v in value]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return None
    return str(value).strip()
