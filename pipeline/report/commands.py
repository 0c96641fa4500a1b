"""The ``report`` and ``compare`` commands (registered on the ``kforensics`` group by cli.py)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import polars as pl

from pipeline.errors import ForensicsError, UsageError
from pipeline.options import format_option, outdir_option
from pipeline.output import emit, rich_table, stdout_console
from pipeline.progress import stderr_console
from pipeline.report.data import Missing


class ReportError(ForensicsError):
    """The report or comparison could not be written."""


def plain(text: str) -> str:
    """A headline without its HTML markup, for the terminal."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", text))


def print_report_summary(rep, path: Path, console=stdout_console) -> None:
    """Headlines, percentiles and causes as rich tables."""
    console.print(f"[bold]report:[/bold] {path}")
    for line in rep.headlines:
        console.print(f"  • {plain(line)}")
    if not isinstance(rep.percentiles, Missing):
        console.print(rich_table(_rounded(rep.percentiles), title="Produce latency (ms) per request"))
    if not isinstance(rep.causes, Missing):
        console.print(rich_table(_rounded(rep.causes), title="Slow requests by cause"))
    for gap in rep.missing:
        console.print(f"  [dim]not shown: {gap}[/dim]")


def _rounded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).round(2))


def run_report(outdir: Path, con=None, *, quiet: bool = False) -> Path:
    """Write OUTDIR/report.html; the `run` command calls this after correlation.

    Pass `con` when the caller still holds the incident database open. Prints the summary
    on stderr unless quiet.
    """
    from pipeline.report.report import write_report

    try:
        path, rep = write_report(Path(outdir), con)
    except OSError as exc:
        raise ReportError(f"cannot write the report in {outdir}: {exc}") from None
    if not quiet:
        print_report_summary(rep, path, stderr_console)
    return path


@click.command("report")
@click.argument("outdir_arg", metavar="[OUTDIR]", required=False, type=click.Path(file_okay=False, path_type=Path))
@outdir_option(help_text="Incident directory holding incident.duckdb (same as the OUTDIR argument).")
@format_option
def report_command(outdir_arg: Path | None, outdir: Path, fmt: str) -> None:
    """Write OUTDIR/report.html and print the latency and cause summary.

    The page is one self-contained file (charts embedded, no network): the bundle,
    latency percentiles overall and per topic, SLO violations, causes, a latency
    heatmap, write and journal-commit latency over time, timelines of the worst
    requests with their evidence, and the top blockers. Sections without data say why.
    With --format csv|json, prints percentiles per scope and slow requests per cause.
    """
    from pipeline.report.report import summary_frame, write_report

    target = outdir_arg or outdir
    try:
        path, rep = write_report(target)
    except OSError as exc:
        raise ReportError(f"cannot write the report in {target}: {exc}") from None
    if fmt == "table":
        print_report_summary(rep, path)
    else:
        emit(summary_frame(rep).with_columns(pl.col(pl.Float64).round(3)), fmt)
        stderr_console.print(f"report: {path}")


@click.command("compare")
@click.argument("incidents", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-l",
    "--label",
    "labels",
    multiple=True,
    help="Name of each incident's configuration, in order (e.g. --label ext4-ordered --label xfs); "
    "defaults to the directory names.",
)
@click.option("--slo-ms", type=float, default=None, help="SLO for every incident [default: the first incident's].")
@outdir_option(help_text="Directory to write compare.html into.")
@format_option
def compare_command(incidents: tuple[Path, ...], labels: tuple[str, ...], slo_ms: float | None, outdir: Path, fmt: str):
    """Compare incident directories A B [C ...] side by side; the first is the baseline.

    Prints percentiles, SLO violations with their relative change against the baseline,
    and slow requests per cause; writes OUTDIR/compare.html with latency CDFs, heatmaps
    and causes per configuration. With --format csv|json, prints one row per
    configuration.
    """
    from pipeline.report.compare import compare_outdirs

    if len(incidents) < 2:
        raise UsageError("compare needs at least two incident directories")
    if labels and len(labels) != len(incidents):
        raise UsageError(f"{len(labels)} --label given for {len(incidents)} incidents: give one per incident or none")
    names = list(labels) or [_name(p) for p in incidents]
    if len(set(names)) != len(names):
        raise UsageError(f"labels must differ: {', '.join(names)} (use --label)")
    if slo_ms is not None and slo_ms <= 0:
        raise UsageError("--slo-ms must be positive")
    try:
        path, comp = compare_outdirs(list(incidents), names, outdir, slo_ms)
    except OSError as exc:
        raise ReportError(f"cannot write {outdir}/compare.html: {exc}") from None
    if fmt != "table":
        emit(comp.side.with_columns(pl.col(pl.Float64).round(3)), fmt)
        stderr_console.print(f"comparison: {path}")
        return
    stdout_console.print(f"[bold]comparison:[/bold] {path}")
    for line in comp.headlines:
        stdout_console.print(f"  • {plain(line)}")
    cols = [
        "label",
        "requests",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "slow",
        "slow_pct",
        "slow_change_pct",
        "p999_change_pct",
    ]
    stdout_console.print(
        rich_table(_rounded(comp.side.select(cols)), title=f"Produce latency (ms), SLO {comp.slo_ms:g} ms")
    )
    if comp.causes.height:
        pivot = (
            comp.causes.group_by("label", "cause")
            .agg(pl.col("requests").sum())
            .pivot(on="label", index="cause", values="requests")
            .fill_null(0)
        )
        order = [n for n in names if n in pivot.columns]
        pivot = pivot.select("cause", *order).sort([order[0], "cause"], descending=[True, False])
        stdout_console.print(rich_table(pivot, title="Slow requests by cause"))


def _name(path: Path) -> str:
    resolved = Path(path).resolve()
    return resolved.name or str(path)
