"""Documentation stays in step with the code."""

from pathlib import Path

from pipeline.tables import render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_tables_doc_is_current():
    doc = (REPO / "docs" / "tables.md").read_text()
    assert doc == render_markdown(), "docs/tables.md is stale: run `python -m pipeline.tables > docs/tables.md`"


def test_every_cli_command_is_in_the_readme():
    from pipeline.cli import cli

    readme = (REPO / "README.md").read_text()
    missing = [name for name in cli.commands if f"kforensics {name}" not in readme]
    assert not missing, f"README does not mention: {missing}"
