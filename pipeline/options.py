"""Command-line options shared by every command group (cli, report, lab)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipeline.output import FORMATS

DEFAULT_OUT = "kforensics-out"


def default_outdir() -> Path:
    """``$KFORENSICS_OUT``, else ``./kforensics-out``."""
    return Path(os.environ.get("KFORENSICS_OUT", DEFAULT_OUT))


def outdir_option(f=None, *, help_text: str = "Output directory holding incident.duckdb and parquet/."):
    """``-o/--outdir`` defaulting to :func:`default_outdir`; usable bare or with ``help_text``."""
    decorator = click.option(
        "-o",
        "--outdir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: str(default_outdir()),
        show_default=f"$KFORENSICS_OUT or {DEFAULT_OUT}",
        help=help_text,
    )
    return decorator(f) if f is not None else decorator


def format_option(f):
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Aligned tables for people, csv or json for scripts.",
    )(f)


def jobs_option(f):
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(1, 64),
        default=lambda: os.cpu_count() or 1,
        show_default="the machine's cores",
        help="Worker processes that parse artifacts in parallel.",
    )(f)
