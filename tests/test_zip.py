"""Safe extraction of uploaded cohort zips (softmass_core.cohorts.cohort_zip)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from softmass_core.cohorts.cohort import read_cohort
from softmass_core.cohorts.cohort_zip import extract_cohort_zip
from softmass_core.errors import CohortError, SoftmassError

CSV = "case_id,cohort,label,gray_path\nc1,test,lipoma,images/c1.png\n"


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_good_zip_extracts_and_reads_as_a_cohort(tmp_path):
    data = _zip({"mine/cohort.csv": CSV.encode(), "mine/images/c1.png": _png(), "__MACOSX/._cohort.csv": b"x"})
    dest = tmp_path / "out"
    csv_path = extract_cohort_zip(data, dest)
    assert csv_path == (dest / "mine" / "cohort.csv").resolve()
    assert _listing(dest) == ["mine/cohort.csv", "mine/images/c1.png"]
    cohort = read_cohort(csv_path)
    assert [r.case_id for r in cohort.rows] == ["c1"]


def test_file_like_input_is_accepted(tmp_path):
    data = _zip({"cohort.csv": CSV.encode(), "images/c1.png": _png()})
    assert extract_cohort_zip(io.BytesIO(data), tmp_path / "o").name == "cohort.csv"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.csv", ".."),
        ("a/../../evil.png", ".."),
        ("/etc/evil.csv", "absolute"),
        ("C:/evil.csv", "absolute"),
        ("..\\evil.png", ".."),
    ],
)
def test_escaping_names_are_refused_and_nothing_is_written(tmp_path, name, reason):
    data = _zip({"cohort.csv": CSV.encode(), name: b"x"})
    dest = tmp_path / "out"
    with pytest.raises(CohortError, match=reason):
        extract_cohort_zip(data, dest)
    assert not dest.exists()
    assert _listing(tmp_path) == []


def test_symlink_entry_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cohort.csv", CSV)
        link = zipfile.ZipInfo("images/c1.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(CohortError, match="symbolic link"):
        extract_cohort_zip(buf.getvalue(), tmp_path / "out")


def test_too_many_files_is_refused(tmp_path):
    entries = {"cohort.csv": CSV.encode()} | {f"images/{i}.png": b"x" for i in range(5)}
    with pytest.raises(CohortError, match="more than 4 files"):
        extract_cohort_zip(_zip(entries), tmp_path / "out", max_files=4)


def test_total_size_limit(tmp_path):
    data = _zip({"cohort.csv": CSV.encode(), "images/c1.png": bytes(range(256)) * 40}, compression=zipfile.ZIP_STORED)
    with pytest.raises(CohortError, match="expands to more than"):
        extract_cohort_zip(data, tmp_path / "out", max_total_bytes=5000)


def test_compression_bomb_is_refused(tmp_path):
    # 8 MiB of zeros deflate to about 8 KiB: a ratio near 1000.
    data = _zip({"cohort.csv": CSV.encode(), "images/c1.png": bytes(8 * 2**20)})
    assert len(data) < 100_000
    with pytest.raises(CohortError, match="zip bomb"):
        extract_cohort_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_header_that_understates_the_size_cannot_write_more(tmp_path):
    # Forge a stored entry whose local data is longer than the central directory says.
    payload = b"A" * 5000
    data = bytearray(_zip({"cohort.csv": CSV.encode(), "images/c1.png": payload}, compression=zipfile.ZIP_STORED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("images/c1.png")
    # Shrink the declared uncompressed size in the central directory only.
    cd_sig = b"PK\x01\x02"
    pos = data.find(cd_sig, 0)
    while pos != -1:
        name_len = int.from_bytes(data[pos + 28 : pos + 30], "little")
        name = bytes(data[pos + 46 : pos + 46 + name_len]).decode()
        if name == info.filename:
            data[pos + 24 : pos + 28] = (100).to_bytes(4, "little")
        pos = data.find(cd_sig, pos + 4)
    dest = tmp_path / "out"
    with pytest.raises(CohortError, match="could not be extracted|more data than"):
        extract_cohort_zip(bytes(data), dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"images/c1.png": b"x"}, "found none"),
        ({"a.csv": b"x", "b/c.CSV": b"y"}, "found 2"),
    ],
)
def test_exactly_one_csv(tmp_path, entries, match):
    with pytest.raises(CohortError, match=match):
        extract_cohort_zip(_zip(entries), tmp_path / "out")


def test_not_a_zip_and_duplicates_and_nonempty_dest(tmp_path):
    with pytest.raises(SoftmassError, match="not a readable zip"):
        extract_cohort_zip(b"this is not a zip", tmp_path / "a")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("cohort.csv", CSV)
        zf.writestr("cohort.csv", CSV)
    with pytest.raises(CohortError, match="twice"):
        extract_cohort_zip(buf.getvalue(), tmp_path / "b")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(CohortError, match="not an empty folder"):
        extract_cohort_zip(_zip({"cohort.csv": CSV.encode()}), busy)
    assert _listing(busy) == ["keep.txt"]


# --------------------------------------------------------------------------- files named as the user knows them


def test_name_in_zip_writes_server_paths_as_names_in_the_zip(tmp_path):
    from softmass_core.cohorts.cohort_zip import name_in_zip

    root = tmp_path / "cache" / "uploads"
    folder = root / "3fa9c2d1"
    names = {folder: "my_cohort.zip"}
    assert name_in_zip(f"{folder}/cohort.csv: 2 problem(s)", names) == "cohort.csv in my_cohort.zip: 2 problem(s)"
    assert name_in_zip(f"Cohort file {folder}/study/cohort.csv does not exist.", names) == (
        "Cohort file study/cohort.csv in my_cohort.zip does not exist."
    )
    quoted = f"Could not read the image file {str(folder / 'img' / 'case 1.png')!r}: gone"
    assert name_in_zip(quoted, names) == "Could not read the image file 'img/case 1.png in my_cohort.zip': gone"
    assert name_in_zip(f"The upload {folder} holds 2 CSVs.", names) == "The upload my_cohort.zip holds 2 CSVs."
    # Another upload's folder (not in this session's names) is still no server path.
    other = root / "77aa" / "x" / "cohort.csv"
    assert name_in_zip(f"{other}: bad", names, uploads_root=root) == "x/cohort.csv in the uploaded zip: bad"
    # A folder whose name only starts like the known one is not taken for it.
    assert name_in_zip(f"{folder}9/c.csv", names) == f"{folder}9/c.csv"


def _zip_with_bad_rows() -> bytes:
    csv = (
        "case_id,cohort,label,gray_path,gray_roi\n"
        'c1,test,lipoma,images/c1.png,"10,10,5,5"\n'
        "c2,test,lipoma,images/missing.png,\n"
    )
    return _zip({"study/cohort.csv": csv.encode(), "study/images/c1.png": _png()})


def test_read_errors_of_an_extracted_zip_name_the_file_in_the_zip(tmp_path):
    from softmass_core.cohorts.cohort_zip import named_in_zip

    dest = tmp_path / "cache" / "uploads" / "3fa9c2d1"
    csv_path = extract_cohort_zip(_zip_with_bad_rows(), dest)
    with pytest.raises(CohortError) as info, named_in_zip({dest: "my_cohort.zip"}):
        read_cohort(csv_path)
    text = str(info.value)
    assert text.startswith("study/cohort.csv in my_cohort.zip: 2 problem(s)")
    assert str(tmp_path) not in text and "uploads" not in text
    assert info.value.problems and all(str(tmp_path) not in p for p in info.value.problems)
    # The inverted ROI is called inverted, not "outside the image".
    (roi_problem,) = [p for p in info.value.problems if "gray_roi" in p]
    assert "is inverted: x1 (5) must be greater than x0 (10)" in roi_problem
    assert "outside" not in roi_problem
    assert "images/missing.png" in text


def test_cohort_page_names_the_file_in_the_users_zip(tiny_weights, tmp_path, monkeypatch):
    import sys

    from streamlit.testing.v1 import AppTest

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "tiny").symlink_to(tiny_weights, target_is_directory=True)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights))
    monkeypatch.setenv("SOFTMASS_CACHE", str(cache))
    for name in [m for m in sys.modules if m == "ui" or m.startswith("ui.")]:
        monkeypatch.delitem(sys.modules, name)  # ui.common reads the env vars at import
    page = str(Path(__file__).resolve().parent.parent / "pages" / "2_cohort.py")
    at = AppTest.from_file(page, default_timeout=120).run()
    at.radio(key="cohort.source").set_value("Upload a zip (cohort CSV + images)").run()
    at.file_uploader(key="cohort.upload").set_value(("my_cohort.zip", _zip_with_bad_rows(), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("study/cohort.csv in my_cohort.zip: 2 problem(s)")
    assert str(cache) not in errors[0] and "uploads" not in errors[0]
    assert "is inverted" in errors[0] and "outside" not in errors[0]
