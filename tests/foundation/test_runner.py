"""The ingest loop and the store, exercised with a tiny line-format parser made for tests."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipeline.bundle import open_bundle
from pipeline.errors import StoreLocked
from pipeline.progress import Progress
from pipeline.registry import REGISTRY, register
from pipeline.runner import ingest_bundle
from pipeline.store import Store
from pipeline.tables import TABLES
from tests.foundation.lines_plugin import TABLE, LinesParser


@pytest.fixture(autouse=True, params=["direct", "spilled"])
def load_path(request, monkeypatch):
    """Every test runs twice: rows inserted as they are parsed, and (as for an artifact of
    64 MiB or more) parsed to Parquet first and loaded after."""
    if request.param == "spilled":
        monkeypatch.setenv("KFORENSICS_SPILL_MIN_BYTES", "0")
    return request.param


@pytest.fixture(autouse=True)
def lines_parser():
    register(LinesParser)
    TABLES["test_lines"] = TABLE
    yield
    REGISTRY.remove(LinesParser)
    TABLES.pop("test_lines")


def _bundle(tmp_path, files: dict[str, str]):
    root = tmp_path / "bundle"
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _ingest(root, out):
    with Store(out) as store:
        summary = ingest_bundle(open_bundle(root, out), store, progress=Progress(quiet=True))
        store.export_parquet()
    return summary


def _q(out, sql):
    with duckdb.connect(str(out / "incident.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_ingest_loads_rows_errors_and_artifacts(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\n2\nx\n3\n", "notes.md": "hello"})
    summary = _ingest(root, tmp_path / "out")
    assert summary.exit_code == 1  # a.txt has a bad line: partial
    out = tmp_path / "out"
    assert _q(out, "select position, value from test_lines order by position") == [(2, 1), (3, 2), (5, 3)]
    assert _q(out, "select position, unit, severity, what from ingest_errors") == [(4, "line", "error", "not_a_number")]
    assert _q(out, "select path, kind, status, rows from artifacts order by path") == [
        ("a.txt", "test-lines", "partial", 3),
        ("notes.md", None, "skipped", 0),
    ]
    assert pl.read_parquet(out / "parquet" / "test_lines.parquet")["value"].to_list() == [1, 2, 3]


def test_reingest_replaces_never_duplicates(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\n2\n", "b/copy.txt": "#kf-test\n1\n2\n"})
    out = tmp_path / "out"
    first = _ingest(root, out)
    second = _ingest(root, out)
    assert first.exit_code == second.exit_code == 0
    assert _q(out, "select count(*) from test_lines") == [(2,)]
    assert _q(out, "select count(*) from ingest_errors") == [(0,)]
    rows = _q(out, "select path, status, error from artifacts order by path")
    assert rows == [("a.txt", "ok", None), ("b/copy.txt", "skipped", "same content as a.txt")]


def test_files_removed_from_the_bundle_leave_the_database(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\n", "b.txt": "#kf-test\n7\n8\n"})
    out = tmp_path / "out"
    _ingest(root, out)
    (root / "b.txt").unlink()
    _ingest(root, out)
    assert _q(out, "select value from test_lines") == [(1,)]
    assert _q(out, "select path from artifacts") == [("a.txt",)]


def test_a_crashing_parser_keeps_its_rows_and_the_bundle_goes_on(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\ncrash\n5\n", "b.txt": "#kf-test\n9\n"})
    out = tmp_path / "out"
    summary = _ingest(root, out)
    assert [(r.path, r.status) for r in summary.results] == [("a.txt", "partial"), ("b.txt", "ok")]
    assert _q(out, "select value from test_lines order by value") == [(1,), (9,)]
    assert _q(out, "select what, message from ingest_errors") == [("parser_crash", "RuntimeError: boom at line 3")]


def test_a_frame_breaking_the_contract_fails_the_artifact(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\nbadframe\n"})
    out = tmp_path / "out"
    summary = _ingest(root, out)
    assert summary.results[0].status == "failed"
    assert "missing ['value']" in summary.results[0].message


def test_an_interrupted_ingest_leaves_the_previous_database_intact(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\n2\n"})
    out = tmp_path / "out"
    _ingest(root, out)
    (root / "a.txt").write_text("#kf-test\n3\ninterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        _ingest(root, out)
    assert _q(out, "select value from test_lines order by value") == [(1,), (2,)]
    assert _q(out, "select path, status, rows from artifacts") == [("a.txt", "ok", 2)]


def test_two_processes_cannot_share_an_outdir(tmp_path):
    with Store(tmp_path / "out"):
        with pytest.raises(StoreLocked, match="in use by another kforensics process"):
            Store(tmp_path / "out")
    with Store(tmp_path / "out"):  # released on close
        pass


def test_parquet_outputs_are_byte_identical_across_runs(tmp_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n5\n3\nx\n", "b.txt": "#kf-test\n9\n"})
    _ingest(root, tmp_path / "one")
    _ingest(root, tmp_path / "two")
    for table in ("test_lines", "ingest_errors"):
        one = (tmp_path / "one" / "parquet" / f"{table}.parquet").read_bytes()
        two = (tmp_path / "two" / "parquet" / f"{table}.parquet").read_bytes()
        assert one == two, f"{table}.parquet differs between identical runs"


def test_spilled_frames_leave_no_work_files(tmp_path, load_path):
    root = _bundle(tmp_path, {"a.txt": "#kf-test\n1\ncrash\n", "b.txt": "#kf-test\n2\n"})
    out = tmp_path / "out"
    _ingest(root, out)
    assert not (out / ".work").exists()
    assert _q(out, "select value from test_lines order by value") == [(1,), (2,)]
