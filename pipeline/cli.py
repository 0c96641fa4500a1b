"""The ``kforensics`` command line.

Exit codes: 0 every artifact ok; 1 finished but some artifacts partial or failed (or a
command failed); 2 usage, bundle or manifest error.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import duckdb
import polars as pl

from pipeline import __version__
from pipeline.bundle import open_bundle
from pipeline.correlate import correlate as run_correlation
from pipeline.correlate import settings_from_manifest, write_settings
from pipeline.errors import ForensicsError, UsageError
from pipeline.explain import explain as explain_request
from pipeline.explain import find_requests
from pipeline.lab import lab_group
from pipeline.options import default_outdir, format_option, jobs_option, outdir_option
from pipeline.output import emit, rich_table, stdout_console
from pipeline.progress import Progress, stderr_console
from pipeline.registry import DUMP_COMMANDS, ParseContext, Probe, detect, load_families
from pipeline.report.commands import compare_command, report_command, run_report
from pipeline.runner import IngestSummary, check_frame, ingest_bundle
from pipeline.store import DB_NAME, INGEST_MEMORY, Store


class Group(click.Group):
    """Turns library errors into one-line messages with the right exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ForensicsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except duckdb.Error as exc:
            click.echo(f"error: {str(exc).splitlines()[0]}", err=True)
            sys.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kforensics")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summaries on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Explain Kafka produce tail latency from a broker's artifact bundle.

    A bundle (directory, .tar, .tar.gz or .zip) holds packet captures, eBPF trace
    logs, thread dumps, JFR recordings and Kafka .log segments. `run` ingests it into
    OUTDIR/incident.duckdb (plus Parquet) for SQL, reports and attribution.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"quiet": quiet}


def _ingest(ctx: click.Context, bundle_path: Path, outdir: Path, strict: bool, jobs: int) -> IngestSummary:
    quiet = ctx.obj["quiet"]
    started = time.perf_counter()
    with Store(outdir, memory_limit=INGEST_MEMORY) as store:
        bundle = open_bundle(bundle_path, outdir)
        with Progress(quiet=quiet) as progress:
            summary = ingest_bundle(bundle, store, progress=progress, strict=strict, jobs=jobs)
        write_settings(store.con, settings_from_manifest(bundle.manifest))
        store.export_parquet()
    if not quiet:
        _print_summary(summary, time.perf_counter() - started, outdir)
    return summary


def _print_summary(summary: IngestSummary, seconds: float, outdir: Path) -> None:
    frame = pl.DataFrame(
        {
            "artifact": [r.path for r in summary.results],
            "kind": [r.kind for r in summary.results],
            "status": [r.status for r in summary.results],
            "rows": [r.rows for r in summary.results],
            "errors": [r.errors for r in summary.results],
            "seconds": [round(r.seconds, 3) for r in summary.results],
            "note": [(r.message or "")[:80] for r in summary.results],
        },
        schema={
            "artifact": pl.Utf8,
            "kind": pl.Utf8,
            "status": pl.Utf8,
            "rows": pl.Int64,
            "errors": pl.Int64,
            "seconds": pl.Float64,
            "note": pl.Utf8,
        },
    )
    stderr_console.print(rich_table(frame, title=f"Ingested {len(summary.results)} artifacts in {seconds:.1f} s"))
    stderr_console.print(f"database: {outdir / DB_NAME}\nparquet:  {outdir / 'parquet'}")


@cli.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@outdir_option
@click.option("--strict", is_flag=True, help="Stop at the first artifact with an error.")
@jobs_option
@click.pass_context
def run(ctx: click.Context, bundle: Path, outdir: Path, strict: bool, jobs: int) -> None:
    """Run every stage on BUNDLE: ingest, correlate, report; print the cause breakdown."""
    summary = _ingest(ctx, bundle, outdir, strict, jobs)
    rc = _correlate(ctx, outdir, {})
    run_report(outdir, con=None, quiet=ctx.obj["quiet"])
    sys.exit(max(summary.exit_code, rc))


def _correlate(ctx: click.Context, outdir: Path, overrides: dict[str, float]) -> int:
    """Run the SQL stages and audits; print the breakdown and the slow requests. Returns an exit code."""
    with Store(outdir) as store:
        result = run_correlation(store.con, overrides)
        store.export_parquet(store.derived_tables())  # the ingested ones were written by ingest
        breakdown = store.frame("select * from cause_breakdown")
        slow = store.frame(
            "select strftime(arrival_at, '%H:%M:%S.%g') as arrival, round(latency_ms, 1) as latency_ms, "
            "topic || '-' || partition as partition, correlation_id, cause, root_cause, chain "
            "from attribution where slow order by arrival_at limit 20"
        )
        counts = store.con.execute("select count(*), count(*) filter (where slow) from attribution").fetchone()
        slo = store.con.execute("select slo_ms from settings").fetchone()[0]
    if not ctx.obj["quiet"]:
        stderr_console.print(f"correlated in {result.seconds:.2f} s ({len(result.stages)} stages, see stage_runs)")
    stdout_console.print(f"{counts[0]} produce requests x partitions, {counts[1]} slower than {slo:g} ms")
    if breakdown.height:
        stdout_console.print(rich_table(breakdown, title="Causes of slow produce requests"))
        stdout_console.print(f"Slow requests ({min(20, counts[1])} of {counts[1]}, by arrival):")
        for r in slow.iter_rows(named=True):
            click.echo(
                f"  {r['arrival']}  {r['latency_ms']:7.1f} ms  {r['partition']}  #{r['correlation_id']}  "
                f"{r['cause']} / {r['root_cause']}: {r['chain']}"
            )
    for name, frame in result.audit_failures.items():
        stderr_console.print(rich_table(frame, title=f"audit failed: {name}", max_rows=10))
    return 1 if result.audit_failures else 0


@cli.command()
@click.argument("outdir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--slo-ms", type=click.FloatRange(min=0, min_open=True), help="SLO in ms (default: bundle.toml, else 65)."
)
@click.option("--handler-threads", type=click.IntRange(min=1), help="Request handler threads when no dump names them.")
@click.pass_context
def correlate(ctx: click.Context, outdir: Path | None, slo_ms: float | None, handler_threads: int | None) -> None:
    """Attribute every slow produce request in OUTDIR (re-runnable after ingest)."""
    outdir = outdir or default_outdir()
    if not (outdir / DB_NAME).exists():
        raise UsageError(f"no {DB_NAME} in {outdir}: run `kforensics ingest BUNDLE -o {outdir}` first")
    overrides = {"slo_ms": slo_ms, "handler_threads": handler_threads}
    sys.exit(_correlate(ctx, outdir, {k: v for k, v in overrides.items() if v is not None}))


@cli.command()
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("request")
@click.option("--topic", help="Only this topic of a multi-partition request.")
@click.option("--partition", type=int, help="Only this partition.")
def explain(outdir: Path, request: str, topic: str | None, partition: int | None) -> None:
    """Print one request's evidence as a timeline. REQUEST: correlation id, CONN_ID/CORRELATION_ID or #PP_ID."""
    with Store(outdir, read_only=True) as store:
        if not store.existing_columns("attribution"):
            raise UsageError(f"{outdir} has no attribution: run `kforensics correlate {outdir}` first")
        ids = find_requests(store.con, request, topic, partition)
        if not ids:
            raise UsageError(f"no produce request {request} in {outdir}")
        click.echo("\n\n".join(explain_request(store.con, i) for i in ids[:10]))


@cli.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@outdir_option
@click.option("--strict", is_flag=True, help="Stop at the first artifact with an error.")
@jobs_option
@click.pass_context
def ingest(ctx: click.Context, bundle: Path, outdir: Path, strict: bool, jobs: int) -> None:
    """Ingest BUNDLE into OUTDIR/incident.duckdb; re-ingest replaces, never duplicates."""
    summary = _ingest(ctx, bundle, outdir, strict, jobs)
    sys.exit(summary.exit_code)


@cli.command()
@click.argument("sql")
@outdir_option
@format_option
def query(sql: str, outdir: Path, fmt: str) -> None:
    """Run SQL against OUTDIR's database and print the result."""
    with Store(outdir, read_only=True) as store:
        frame = store.frame(sql)
    emit(frame, fmt)


@cli.command()
@outdir_option
@format_option
def artifacts(outdir: Path, fmt: str) -> None:
    """List what was ingested: kind, status, rows, errors per artifact."""
    with Store(outdir, read_only=True) as store:
        frame = store.frame(
            """
            select a.path, a.kind, a.status, a.rows, count(e.artifact_id) as errors,
                   a.bytes_skipped, round(a.seconds, 3) as seconds, a.error
            from artifacts a left join ingest_errors e using (artifact_id)
            group by all order by a.path
            """
        )
    emit(frame, fmt)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option
def inspect(file: Path, fmt: str) -> None:
    """Detect one FILE's kind, parse it in memory and summarise what it holds."""
    probe = Probe.of(file, file.as_posix())
    parser = detect(probe)
    if parser is None:
        raise UsageError(f"{file}: content not recognised as any artifact kind")
    info = {"file": str(file), "kind": parser.kind, "size_bytes": probe.size, "gzip": probe.gzipped}
    if parser.skip_reason:
        emit(pl.DataFrame([{**info, "note": parser.skip_reason}]), fmt)
        return
    ctx = ParseContext(file, file.as_posix(), "inspect")
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, frame in parser().parse(ctx):
        frames.setdefault(table, []).append(check_frame(parser, table, frame))
    tables = {t: pl.concat(fs) for t, fs in frames.items()}
    summary = pl.DataFrame(
        [
            {
                **info,
                **{f"{t}_rows": tables.get(t, pl.DataFrame()).height for t in parser.tables},
                "errors": len(ctx.errors),
            }
        ]
    )
    if fmt != "table":
        emit(summary, fmt)
        return
    emit(summary, fmt, title=f"{file.name}: {parser.kind}")
    for title, frame in parser.summarise(tables):
        stdout_console.print(rich_table(frame, title=title, max_rows=50))
    if ctx.errors:
        errs = pl.DataFrame([e.__dict__ for e in ctx.errors])
        stdout_console.print(rich_table(errs, title="errors", max_rows=20))


@cli.command()
@click.argument("outdirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--fleet",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Fleet directory: parquet/<table>/incident=/broker=/ and fleet.duckdb views.",
)
@format_option
def merge(outdirs: tuple[Path, ...], fleet: Path, fmt: str) -> None:
    """Merge several incident OUTDIRS into one fleet dataset (Parquet partitions + views)."""
    from pipeline.fleet import merge as merge_fleet

    counts = merge_fleet(list(outdirs), fleet)
    emit(pl.DataFrame({"table": list(counts), "rows": list(counts.values())}), fmt)


@cli.group()
def dump() -> None:
    """Print one artifact's contents, decoded, in the style of the reference tools."""


cli.add_command(report_command)
cli.add_command(compare_command)
cli.add_command(lab_group)
load_families()
for _cmd in DUMP_COMMANDS:
    dump.add_command(_cmd)


def main() -> None:
    cli(prog_name="kforensics")


if __name__ == "__main__":
    main()
