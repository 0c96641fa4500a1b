import io
import json
import tarfile

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli


def _invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_and_option_has_help_text():
    missing = []
    for path, cmd in _commands(cli):
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for p in cmd.params:
            if isinstance(p, click.Option) and not (p.help or "").strip():
                missing.append(f"{' '.join(path)} {p.opts[0]}")
    assert not missing, f"commands/options without help text: {missing}"


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)])
def test_help_runs(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_run_exit_codes_and_query_formats(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.toml").write_text("slo_ms = 50\n")
    (bundle / "readme.txt").write_text("nothing to see")
    out = tmp_path / "out"
    result = _invoke("run", bundle, "-o", out)
    assert result.exit_code == 0, result.output
    result = _invoke("query", "select path, kind, status from artifacts order by path", "-o", out, "--format", "json")
    assert json.loads(result.output) == [
        {"path": "bundle.toml", "kind": "manifest", "status": "ok"},
        {"path": "readme.txt", "kind": None, "status": "skipped"},
    ]
    result = _invoke("query", "select 1 as a, 'x' as b", "-o", out, "--format", "csv")
    assert result.output == "a,b\n1,x\n"
    result = _invoke("artifacts", "-o", out, "--format", "csv")
    assert result.exit_code == 0 and "readme.txt,,skipped,0,0" in result.output


def test_user_mistakes_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(cli, ["query", "select nope", "-o", tmp_path / "missing"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no incident.duckdb in") and "Traceback" not in result.output
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.toml").write_text("kafka_ports = 9092\n")
    result = CliRunner().invoke(cli, ["run", str(bundle), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert (
        result.output.strip() == "error: bundle.toml: key 'kafka_ports' must be a list of TCP ports (1-65535), got 9092"
    )
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "nope")])
    assert result.exit_code == 2  # click usage error: path does not exist


def test_malicious_tar_is_refused_with_exit_2(tmp_path):
    arc = tmp_path / "evil.tar.gz"
    with tarfile.open(arc, "w:gz") as tar:
        info = tarfile.TarInfo("../../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    result = CliRunner().invoke(cli, ["run", str(arc), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "archive member '../../outside.txt' climbs out with '..': refused" in result.output
    assert not (tmp_path.parent / "outside.txt").exists()


def test_inspect_unknown_file_is_a_usage_error(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"\x00\x01garbage")
    result = CliRunner().invoke(cli, ["inspect", str(f)])
    assert result.exit_code == 2 and "content not recognised" in result.output
