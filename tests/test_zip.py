"""Safe extraction of uploaded cohort zips (softmass_core.cohort_zip)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from softmass_core.cohort import read_cohort
from softmass_core.cohort_zip import extract_cohort_zip
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
