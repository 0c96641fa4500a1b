import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UsageError
from pipeline.fleet import merge


def _incident(tmp_path, name: str, toml: str):
    bundle = tmp_path / name
    bundle.mkdir()
    (bundle / "bundle.toml").write_text(toml)
    (bundle / "notes.txt").write_text(f"notes of {name}")
    out = tmp_path / f"out-{name}"
    assert CliRunner().invoke(cli, ["-q", "run", str(bundle), "-o", str(out), "-j", "1"]).exit_code == 0
    return out


def test_merge_unions_incidents_partitioned_by_incident_and_broker(tmp_path):
    a = _incident(tmp_path, "a", 'incident = "inc-1"\nbroker_id = 7\n')
    b = _incident(tmp_path, "b.tar.gz-like", "broker_id = 8\nslo_ms = 100\n")
    fleet = tmp_path / "fleet"
    counts = merge([a, b], fleet)
    assert counts["bundle"] == 2 and counts["artifacts"] == 4
    assert (fleet / "parquet" / "artifacts" / "incident=inc-1" / "broker=7" / "data.parquet").exists()
    with duckdb.connect(str(fleet / "fleet.duckdb"), read_only=True) as con:
        rows = con.sql("select incident, broker, slo_ms from bundle order by incident").fetchall()
    assert rows == [("b.tar.gz-like", 8, 100.0), ("inc-1", 7, 65.0)]
    glob = (fleet / "parquet" / "artifacts" / "*" / "*" / "*.parquet").as_posix()
    by_glob = duckdb.sql(
        f"select incident, count(*) from read_parquet('{glob}', hive_partitioning = true) group by all order by 1"
    ).fetchall()
    assert by_glob == [("b.tar.gz-like", 2), ("inc-1", 2)]
    assert merge([a, b], fleet)["artifacts"] == 4  # idempotent


def test_merge_refuses_the_same_incident_twice(tmp_path):
    a = _incident(tmp_path, "a", 'incident = "x"\n')
    b = _incident(tmp_path, "b", 'incident = "x"\n')
    with pytest.raises(UsageError, match="are both incident x on broker unknown"):
        merge([a, b], tmp_path / "fleet")
