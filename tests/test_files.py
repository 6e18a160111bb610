import errno
import subprocess
import uuid

import pandas as pd
import pytest

from ltv_helpers import files
from ltv_helpers.schema import LTVError


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB file system (tmpfs), so that writes fail with a real 'No space left on device'.
    Mounting needs root; elsewhere the test is skipped (the injected-error tests still run)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_leaves_no_file_and_says_so_in_one_sentence(small_disk):
    (small_disk / "report.html").write_text("the last good report")
    with pytest.raises(LTVError) as err:
        files.write_text(small_disk / "report.html", "x" * 200_000)
    assert str(err.value) == (f"Could not write report.html in {small_disk}: the disk is full; "
                              "free some space and run again.")
    assert (small_disk / "report.html").read_text() == "the last good report"  # the old file is untouched
    assert sorted(p.name for p in small_disk.iterdir()) == ["report.html"]  # no temporary file is left
    frame = pd.DataFrame({"id": [str(i) * 50 for i in range(5_000)]})
    with pytest.raises(LTVError, match="segments.csv .*disk is full"):
        files.write_csv(frame, small_disk / "segments.csv")
    assert sorted(p.name for p in small_disk.iterdir()) == ["report.html"]
    # A segment list (text and whole numbers) is written by DuckDB: the same sentence, no file left.
    segments = frame.assign(score=1).set_index("id")
    assert files._text_and_integers(files.neutralise_formulas(segments))
    with pytest.raises(LTVError, match="segments.csv .*disk is full"):
        files.write_csv(segments, small_disk / "segments.csv")
    assert sorted(p.name for p in small_disk.iterdir()) == ["report.html"]


def test_an_injected_write_error_is_one_sentence_and_no_file(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("pathlib.Path.write_text", broken)
    with pytest.raises(LTVError, match=r"^Could not write run.json in .*: the folder cannot be written to"):
        files.write_json(tmp_path / "run.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_failing_writer_keeps_the_old_file_whole(tmp_path):
    target = tmp_path / "predictions.parquet"
    files.write_parquet(pd.DataFrame({"a": [1, 2]}), target)

    class Boom(pd.DataFrame):
        def to_parquet(self, path, **kwargs):
            with open(path, "wb") as fh:
                fh.write(b"PAR1 half a file")
            raise KeyboardInterrupt  # killed midway

    with pytest.raises(KeyboardInterrupt):
        files.write_parquet(Boom({"a": [3]}), target)
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]


def test_formula_cells_are_neutralised_for_spreadsheets_and_numbers_are_not():
    frame = pd.DataFrame({
        "segment": pd.Categorical(["=cmd", "champions", "@SUM(A1)"]),
        "note": ["+1+1", "-2+3", "\tTAB"],
        "amount": [-5.0, 2.0, 3.0],
        "name": ["a-b", "\rCR", None],
    }, index=pd.Index(['=HYPERLINK("http://x","c")', "12345", "x"], name="customer_id"))
    out = files.neutralise_formulas(frame)
    assert out.index.tolist() == ["'=HYPERLINK(\"http://x\",\"c\")", "12345", "x"]
    assert out["segment"].tolist() == ["'=cmd", "champions", "'@SUM(A1)"]
    assert out["note"].tolist() == ["'+1+1", "'-2+3", "'\tTAB"]
    assert out["amount"].tolist() == [-5.0, 2.0, 3.0]  # numbers are numbers, a minus sign included
    assert out["name"].tolist()[:2] == ["a-b", "'\rCR"] and pd.isna(out["name"].iloc[2])
    assert frame.index[0].startswith("=")  # the caller's frame is not changed


def test_write_csv_gives_excel_a_bom_and_no_live_formula(tmp_path):
    frame = pd.DataFrame({"tier": ["高价值", "=1+1"]}, index=pd.Index(["@x", "42"], name="customer_id"))
    path = files.write_csv(frame, tmp_path / "segments.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert back["customer_id"].tolist() == ["'@x", "42"] and back["tier"].tolist() == ["高价值", "'=1+1"]
    assert not any(cell.startswith(files.FORMULA_START) for cell in back.to_numpy().ravel())


def test_numbers_in_text_columns_and_multi_level_indexes():
    frame = pd.DataFrame({"mixed": pd.array([-5, "=1+1", "+86 138"], dtype="object")},
                         index=pd.MultiIndex.from_tuples([("=a", 1), ("b", -2), ("@c", 3)], names=["id", "n"]))
    out = files.neutralise_formulas(frame)
    assert out["mixed"].tolist() == [-5, "'=1+1", "'+86 138"]
    assert out.index.tolist() == [("'=a", 1), ("b", -2), ("'@c", 3)] and out.index.names == ["id", "n"]


def test_a_segment_list_written_by_duckdb_has_pandas_bytes_and_keeps_every_cell(tmp_path):
    """Text and whole numbers go through DuckDB (fast at 1M customers): the bytes pandas writes for
    plain cells, and every hostile cell read back as it was (quoted where DuckDB quotes more)."""
    plain = pd.DataFrame({"R": [5, 1], "segment": ["Champions", "高价值 客户"], "stage": ["growth", "decline"]},
                         index=pd.Index(["C1", "C2"], name="customer_id"))
    assert files._text_and_integers(plain)
    path = files.write_csv(plain, tmp_path / "plain.csv")
    assert path.read_bytes() == b"\xef\xbb\xbf" + plain.to_csv().encode()
    hostile = ["", None, "x,y", 'q"uote', "new\nline", "cr\rx", " lead", "#hash", "NULL", "中文", "=1+1", "-2"]
    frame = pd.DataFrame({"tier": pd.array(hostile, dtype="str"), "n": range(len(hostile))},
                         index=pd.Index([f"id{i}" for i in range(len(hostile))], name="customer_id"))
    back = pd.read_csv(files.write_csv(frame, tmp_path / "hostile.csv"), encoding="utf-8-sig", dtype=str,
                       keep_default_na=False)
    assert back["tier"].tolist() == ["", "", "x,y", 'q"uote', "new\nline", "cr\rx", " lead", "#hash", "NULL", "中文",
                                     "'=1+1", "'-2"]
    assert back["n"].tolist() == [str(i) for i in range(len(hostile))]
    # Floats, dates or a number in a text column stay with pandas.
    assert not files._text_and_integers(plain.assign(x=0.5))
    assert not files._text_and_integers(pd.DataFrame({"m": pd.array([-5, "a"], dtype="object")},
                                                     index=pd.Index(["a", "b"], name="id")))
