"""Tests of softmass_core.io.images: every format built on the fly, DICOM via pydicom."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom.pixels
import pytest
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from softmass_core.errors import DecoderMissingError, ImageError
from softmass_core.io import dicom
from softmass_core.io.images import ImageInfo, LoadedImage, dicom_safe_metadata, load_image

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "ID12345"
IDENTIFIERS = ("Doe", "Jane", PATIENT_ID, "19700101", "ACC998877", "St Example Hospital")


# --------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------


def pil_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gradient_rgb(h: int = 12, w: int = 20) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10 % 256, y * 20 % 256, (x + y) * 5 % 256], axis=2).astype(np.uint8)


def make_dicom(
    pixels: bytes,
    *,
    rows: int,
    cols: int,
    photometric: str,
    samples: int = 1,
    bits: int = 8,
    frames: int | None = None,
    ts: str = uid.ExplicitVRLittleEndian,
    extra: dict | None = None,
    preamble: bool = True,
) -> bytes:
    """A minimal ultrasound DICOM file, with patient identifiers that must not leak."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = uid.UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = uid.UltrasoundImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Manufacturer = "ACME Ultrasound"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.AccessionNumber = "ACC998877"
    ds.InstitutionName = "St Example Hospital"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = samples
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames is not None:
        ds.NumberOfFrames = frames
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = pixels
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
    else:
        ds.save_as(buf, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def assert_no_identifiers(loaded: LoadedImage) -> None:
    texts = [repr(loaded), repr(loaded.info), repr(loaded.info.to_dict())]
    for text in texts:
        for ident in IDENTIFIERS:
            assert ident not in text
    assert set(vars(loaded)) == {"rgb", "info"}


# --------------------------------------------------------------------------
# Pillow formats
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_lossless_formats_round_trip_exactly(fmt: str) -> None:
    rgb = gradient_rgb()
    loaded = load_image(pil_bytes(Image.fromarray(rgb), fmt))
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (12, 20, 3)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.info == ImageInfo(
        format=fmt, width=20, height=12, n_frames=1, frame=0, modality=None, photometric="RGB"
    )
    assert loaded.info.transfer_syntax is None and loaded.info.manufacturer is None


def test_jpeg_is_close_to_source() -> None:
    rgb = np.full((16, 24, 3), (180, 90, 40), dtype=np.uint8)
    loaded = load_image(pil_bytes(Image.fromarray(rgb), "JPEG", quality=95))
    assert loaded.info.format == "JPEG"
    assert np.abs(loaded.rgb.astype(int) - rgb).max() <= 3


def test_path_and_file_like_sources(tmp_path) -> None:
    rgb = gradient_rgb()
    path = tmp_path / "case.png"
    Image.fromarray(rgb).save(path)
    from_path = load_image(path)
    from_str = load_image(str(path))
    buf = io.BytesIO(path.read_bytes())
    buf.read()  # an upload already read once (Streamlit rerun) must still load
    from_buffer = load_image(buf)
    for loaded in (from_path, from_str, from_buffer):
        np.testing.assert_array_equal(loaded.rgb, rgb)
        assert loaded.rgb.flags.writeable and loaded.rgb.flags.c_contiguous


def test_grayscale_replicated_to_three_channels() -> None:
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    loaded = load_image(pil_bytes(Image.fromarray(gray, "L"), "PNG"))
    assert loaded.info.photometric == "L"
    for c in range(3):
        np.testing.assert_array_equal(loaded.rgb[:, :, c], gray)


def test_16bit_png_min_max_scaled() -> None:
    values = np.array([[1000, 2000, 3000], [4000, 5000, 6000]], dtype=np.uint16)
    img = Image.fromarray(values)
    loaded = load_image(pil_bytes(img, "PNG"))
    assert loaded.info.photometric.startswith("I")
    expected = np.rint((values - 1000) * 255.0 / 5000).astype(np.uint8)
    np.testing.assert_array_equal(loaded.rgb[:, :, 0], expected)
    assert loaded.rgb[0, 0, 0] == 0 and loaded.rgb[1, 2, 0] == 255


def test_rgba_flattened_over_black() -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[255, 0], [128, 51]]
    loaded = load_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert loaded.info.photometric == "RGBA"
    np.testing.assert_array_equal(loaded.rgb[0, 0], [200, 100, 50])
    np.testing.assert_array_equal(loaded.rgb[0, 1], [0, 0, 0])
    # 200 * 128 / 255 = 100.4 -> 100; 200 * 51 / 255 = 40
    np.testing.assert_array_equal(loaded.rgb[1, 0], [100, 50, 25])
    np.testing.assert_array_equal(loaded.rgb[1, 1], [40, 20, 10])


def test_palette_png_expanded_through_palette() -> None:
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.fromarray(indices, "L").convert("P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    loaded = load_image(pil_bytes(img, "PNG"))
    assert loaded.info.photometric == "P"
    np.testing.assert_array_equal(loaded.rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(loaded.rgb[0, 1], [0, 255, 0])
    np.testing.assert_array_equal(loaded.rgb[1, 0], [0, 0, 255])


def test_multipage_tiff_frame_selection() -> None:
    pages = [Image.fromarray(np.full((5, 7), v, dtype=np.uint8), "L") for v in (10, 20, 30)]
    data = pil_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    first = load_image(data)
    second = load_image(data, frame=1)
    assert first.info.n_frames == 3 and first.info.frame == 0
    assert int(first.rgb[0, 0, 0]) == 10
    assert second.info.frame == 1 and int(second.rgb[2, 3, 1]) == 20
    with pytest.raises(ImageError, match="0 to 2"):
        load_image(data, frame=3)


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------


def test_empty_bytes() -> None:
    with pytest.raises(ImageError, match="empty") as info:
        load_image(b"")
    assert "Upload a PNG, JPEG, BMP, TIFF or DICOM file" in str(info.value)


def test_truncated_png_wrapped_with_cause() -> None:
    data = pil_bytes(Image.fromarray(gradient_rgb(64, 64)), "PNG")
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(data[: len(data) // 2])
    assert info.value.__cause__ is not None


def test_random_bytes_and_text_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ImageError, match="not a recognised image"):
        load_image(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="text, not an image"):
        load_image(b"patient,label\n1,lipoma\n")
    gif = pil_bytes(Image.new("RGB", (4, 4)), "GIF")
    with pytest.raises(ImageError, match="GIF files are not supported"):
        load_image(gif)


def test_unreadable_path(tmp_path) -> None:
    with pytest.raises(ImageError, match="Could not read the image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="Could not read"):
        load_image(tmp_path)  # a directory


def test_wrong_source_type() -> None:
    with pytest.raises(ImageError, match="pass a path, bytes"):
        load_image(12345)  # type: ignore[arg-type]


def test_too_many_pixels_png() -> None:
    data = pil_bytes(Image.new("RGB", (100, 50)), "PNG")
    with pytest.raises(ImageError, match="too large.*5,000 pixels"):
        load_image(data, max_pixels=4_999)
    assert load_image(data, max_pixels=5_000).rgb.shape == (50, 100, 3)


def test_pillow_limit_raised_only_locally(monkeypatch) -> None:
    # Pillow's own bomb guard is below our limit: the image still loads and
    # the global setting is back as it was afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = pil_bytes(Image.new("L", (40, 40)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        loaded = load_image(data, max_pixels=10_000)
    assert loaded.rgb.shape == (40, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_bad_frame_argument() -> None:
    data = pil_bytes(Image.new("RGB", (4, 4)), "PNG")
    with pytest.raises(ImageError, match="valid frame indices: 0"):
        load_image(data, frame=1)
    with pytest.raises(ImageError, match="integer"):
        load_image(data, frame=1.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------


def test_dicom_monochrome2_8bit_as_stored() -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    data = make_dicom(gray.tobytes(), rows=6, cols=8, photometric="MONOCHROME2")
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.rgb[:, :, 1], gray)
    assert loaded.info == ImageInfo(
        format="DICOM",
        width=8,
        height=6,
        n_frames=1,
        frame=0,
        modality="US",
        photometric="MONOCHROME2",
        transfer_syntax="Explicit VR Little Endian",
        manufacturer="ACME Ultrasound",
    )
    assert_no_identifiers(loaded)


def test_dicom_monochrome1_inverted() -> None:
    gray = np.array([[0, 55], [200, 255]], dtype=np.uint8)
    data = make_dicom(gray.tobytes(), rows=2, cols=2, photometric="MONOCHROME1")
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.rgb[:, :, 0], [[255, 200], [55, 0]])


def test_dicom_16bit_window_known_values() -> None:
    # PS3.3 C.11.2.1.2.1 with c=1000, w=1001: x <= 499.5 -> 0, x > 1499.5 -> 255,
    # x = 1000 -> ((1000 - 999.5) / 1000 + 0.5) * 255 = 127.6 -> 128.
    values = np.array([[0, 499, 1000, 1500, 4095, 750]], dtype=np.uint16)
    data = make_dicom(
        values.tobytes(),
        rows=1,
        cols=6,
        photometric="MONOCHROME2",
        bits=12,
        extra={"WindowCenter": 1000, "WindowWidth": 1001},
    )
    got = load_image(data).rgb[0, :, 0]
    # x = 750 -> ((750 - 999.5) / 1000 + 0.5) * 255 = 63.9 -> 64
    np.testing.assert_array_equal(got, [0, 0, 128, 255, 255, 64])


def test_dicom_16bit_without_window_min_max() -> None:
    values = np.array([[100, 600], [1100, 2100]], dtype=np.uint16)
    data = make_dicom(values.tobytes(), rows=2, cols=2, photometric="MONOCHROME2", bits=16)
    got = load_image(data).rgb[:, :, 2]
    np.testing.assert_array_equal(got, np.rint((values - 100) * 255.0 / 2000).astype(np.uint8))


def test_dicom_rgb() -> None:
    rgb = gradient_rgb(4, 6)
    data = make_dicom(rgb.tobytes(), rows=4, cols=6, photometric="RGB", samples=3)
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.info.photometric == "RGB"


def test_dicom_ybr_full_known_colours() -> None:
    # DICOM PS3.3 C.7.6.3.1.2 (ITU-R BT.601 full range): pure red is
    # Y = 0.299 * 255 = 76.2, Cb = 128 - 0.1687 * 255 = 85.0, Cr = 128 + 0.5 * 255 -> 255;
    # mid grey is (128, 128, 128) in both spaces.
    ybr = np.array([[[76, 85, 255], [128, 128, 128]]], dtype=np.uint8)
    data = make_dicom(ybr.tobytes(), rows=1, cols=2, photometric="YBR_FULL", samples=3)
    got = load_image(data).rgb.astype(int)
    assert np.abs(got[0, 0] - [255, 0, 0]).max() <= 2
    np.testing.assert_array_equal(got[0, 1], [128, 128, 128])


def test_dicom_ybr_full_422_subsampled() -> None:
    # 4:2:2 stores Y1 Y2 Cb Cr for each pair of pixels.
    pair = np.array([76, 76, 85, 255], dtype=np.uint8)
    data = make_dicom(np.tile(pair, 4).tobytes(), rows=2, cols=4, photometric="YBR_FULL_422", samples=3)
    got = load_image(data).rgb.astype(int)
    assert got.shape == (2, 4, 3)
    assert np.abs(got - [255, 0, 0]).max() <= 2


def test_dicom_palette_colour() -> None:
    n = 256
    red = np.arange(n, dtype=np.uint16) * 257
    green = (255 - np.arange(n, dtype=np.uint16)) * 257
    blue = np.full(n, 100 * 257, dtype=np.uint16)
    extra = {
        "RedPaletteColorLookupTableDescriptor": [n, 0, 16],
        "GreenPaletteColorLookupTableDescriptor": [n, 0, 16],
        "BluePaletteColorLookupTableDescriptor": [n, 0, 16],
        "RedPaletteColorLookupTableData": red.tobytes(),
        "GreenPaletteColorLookupTableData": green.tobytes(),
        "BluePaletteColorLookupTableData": blue.tobytes(),
    }
    index = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    data = make_dicom(index.tobytes(), rows=2, cols=2, photometric="PALETTE COLOR", extra=extra)
    got = load_image(data).rgb
    np.testing.assert_array_equal(got[0, 1], [10, 245, 100])
    np.testing.assert_array_equal(got[1, 0], [200, 55, 100])
    np.testing.assert_array_equal(got[1, 1], [255, 0, 100])


def test_dicom_multiframe_chosen_frame() -> None:
    frames = np.stack([np.full((3, 5), v, dtype=np.uint8) for v in (10, 20, 30)])
    data = make_dicom(frames.tobytes(), rows=3, cols=5, photometric="MONOCHROME2", frames=3)
    assert int(load_image(data).rgb[0, 0, 0]) == 10
    loaded = load_image(data, frame=2)
    assert loaded.info.n_frames == 3 and loaded.info.frame == 2
    assert int(loaded.rgb[1, 1, 0]) == 30
    with pytest.raises(ImageError, match=r"Frame 3 is out of range.*0 to 2"):
        load_image(data, frame=3)


def test_dicom_pixel_limit_checked_before_decoding() -> None:
    # Header says 3 frames of 100 x 100 but the pixel data is far too short:
    # the size check must fire first (no decode attempted).
    data = make_dicom(b"\x00" * 16, rows=100, cols=100, photometric="MONOCHROME2", frames=3)
    with pytest.raises(ImageError, match="3 frames = 30,000 pixels"):
        load_image(data, max_pixels=20_000)
    with pytest.raises(ImageError, match="could not be decoded"):
        load_image(data, max_pixels=40_000)


def test_dicom_without_pixel_data() -> None:
    ds_bytes = make_dicom(b"", rows=2, cols=2, photometric="MONOCHROME2")
    # Rebuild without PixelData at all.
    ds = pydicom.dcmread(io.BytesIO(ds_bytes))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(ImageError, match="no pixel data"):
        load_image(buf.getvalue())


def test_truncated_dicom() -> None:
    gray = np.zeros((32, 32), dtype=np.uint8)
    data = make_dicom(gray.tobytes(), rows=32, cols=32, photometric="MONOCHROME2")
    with pytest.raises(ImageError) as info:
        load_image(data[: len(data) - 600])
    assert info.value.__cause__ is not None


def test_preambleless_dicom_needs_dcm_name() -> None:
    gray = np.full((4, 4), 77, dtype=np.uint8)
    data = make_dicom(gray.tobytes(), rows=4, cols=4, photometric="MONOCHROME2", preamble=False)
    assert data[128:132] != b"DICM"
    loaded = load_image(data, name="IMG0001.DCM")
    assert loaded.info.format == "DICOM" and int(loaded.rgb[0, 0, 0]) == 77
    with pytest.raises(ImageError):
        load_image(data)  # no .dcm name: not guessed
    rng = np.random.default_rng(1)
    with pytest.raises(ImageError, match="not a recognised image"):
        load_image(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(), name="junk.dcm")
    with pytest.raises(ImageError, match="text, not an image"):
        load_image(b"not really a dicom file\n" * 10, name="notes.dcm")


def test_dicom_jpeg_baseline_decodes_when_plugin_present() -> None:
    if not pydicom.pixels.get_decoder(uid.JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG baseline decoder installed")
    jpeg = pil_bytes(Image.new("RGB", (16, 16), (200, 30, 60)), "JPEG", quality=95)
    data = make_dicom(
        encapsulate([jpeg]), rows=16, cols=16, photometric="YBR_FULL_422", samples=3, ts=uid.JPEGBaseline8Bit
    )
    loaded = load_image(data)
    assert loaded.info.transfer_syntax == "JPEG Baseline (Process 1)"
    assert np.abs(loaded.rgb[8, 8].astype(int) - [200, 30, 60]).max() <= 3


def test_dicom_jpeg_baseline_decoder_missing(monkeypatch) -> None:
    monkeypatch.setattr(dicom, "_decoder_available", lambda ts: False)
    data = make_dicom(
        encapsulate([b"\xff\xd8\xff\xdbbogus"]),
        rows=16,
        cols=16,
        photometric="YBR_FULL_422",
        samples=3,
        ts=uid.JPEGBaseline8Bit,
    )
    with pytest.raises(DecoderMissingError) as info:
        load_image(data)
    message = str(info.value)
    assert "JPEG Baseline (Process 1)" in message and "1.2.840.10008.1.2.4.50" in message
    assert "pip install pylibjpeg pylibjpeg-libjpeg" in message
    assert isinstance(info.value, ImageError)


@pytest.mark.parametrize(
    ("ts", "package"),
    [(uid.JPEGLSLossless, "pylibjpeg-libjpeg"), (uid.HTJ2KLossless, "pylibjpeg-openjpeg")],
)
def test_dicom_really_missing_decoders(ts: str, package: str) -> None:
    if pydicom.pixels.get_decoder(ts).is_available:
        pytest.skip(f"a decoder for {ts} is installed")
    data = make_dicom(encapsulate([b"bogus-bytes"]), rows=8, cols=8, photometric="MONOCHROME2", ts=ts)
    with pytest.raises(DecoderMissingError, match=package) as info:
        load_image(data)
    assert uid.UID(ts).name in str(info.value)


def test_dicom_safe_metadata_whitelist() -> None:
    gray = np.zeros((4, 4), dtype=np.uint8)
    data = make_dicom(gray.tobytes(), rows=4, cols=4, photometric="MONOCHROME2")
    meta = dicom_safe_metadata(data)
    assert meta["Modality"] == "US" and meta["Rows"] == 4
    assert meta["TransferSyntaxUID"] == "Explicit VR Little Endian"
    assert meta["SOPClassUID"] == "Ultrasound Image Storage"
    text = repr(meta)
    for ident in IDENTIFIERS:
        assert ident not in text
    with pytest.raises(ImageError, match="not a DICOM"):
        dicom_safe_metadata(pil_bytes(Image.new("L", (2, 2)), "PNG"))


def fake_dicom() -> bytes:
    """A DICM preamble and a file-meta group, then garbage: pydicom warns while it reads this."""
    import struct

    ts = b"1.2.840.10008.1.2.1\0"
    element = struct.pack("<HH2sH", 2, 0x10, b"UI", len(ts)) + ts
    meta = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(element)) + element
    rng = np.random.default_rng(0)
    return b"\0" * 128 + b"DICM" + meta + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()


def test_fake_dicom_is_one_error_and_no_decoder_chatter(caplog) -> None:
    import logging
    import warnings

    data = fake_dicom()
    # Without the guard pydicom does warn on this file (so the check below means something).
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        pydicom.dcmread(io.BytesIO(data))
    assert any("implicit VR" in str(w.message) for w in raw)

    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmread(io.BytesIO(data))
    assert any(r.name.startswith("pydicom") for r in caplog.records)  # pydicom logs it too
    caplog.clear()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="could not be read as DICOM") as info:
            load_image(data)
    assert "\n" not in str(info.value)
    assert seen == []
    assert [r for r in caplog.records if r.name.startswith(("pydicom", "PIL"))] == []
    # Outside a read, pydicom's logger and other code's warnings work as before.
    logging.getLogger("pydicom").warning("still logging")
    assert any(r.getMessage() == "still logging" for r in caplog.records)
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        warnings.warn("other code", UserWarning, stacklevel=1)
    assert [str(w.message) for w in later] == ["other code"]


def test_reading_a_png_or_simulating_a_case_imports_neither_pydicom_nor_scipy_signal() -> None:
    """The app's first page reads PNGs and simulates its demo case: it must not pay for pydicom or scipy.signal."""
    import subprocess
    import sys

    code = (
        "import sys, io\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from softmass_core.io.images import load_image\n"
        "from softmass_core.data.phantom import generate_case\n"
        "buf = io.BytesIO(); Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format='PNG')\n"
        "load_image(buf.getvalue())\n"
        "generate_case('lipoma', hospital=1, seed=0)\n"
        "print(sorted(m for m in ('pydicom', 'scipy.signal') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
