"""Coverage-guided fuzzing of one parser with atheris, from seeds of real files.

    python fuzz/fuzz_parser.py KIND [-max_total_time=60] [-runs=N]
    python fuzz/fuzz_parser.py KIND crash-1234...     replay saved inputs (no fuzzing)

Crashes (an exception escaping the parser, an error row without a position, or a hang
past the budget) abort with the input saved by libFuzzer as ``crash-*``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

# The checkout first: the package need not be installed to be fuzzed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only our own code: instrumenting the libraries it imports (polars, numpy) breaks them.
with atheris.instrument_imports(include=["pipeline"]):
    import pipeline.ingest  # noqa: F401
    from pipeline.registry import load_families

    load_families()

from fuzz.harness import parse_bytes, problems, seeds  # noqa: E402


def main() -> None:
    kind, args = sys.argv[1], sys.argv[2:]
    work = Path(tempfile.mkdtemp(prefix=f"kf-fuzz-{kind}-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds(kind)):
        (corpus / f"seed-{i:03d}").write_bytes(seed.read_bytes())

    def one_input(data: bytes) -> None:
        outcome = parse_bytes(kind, data, work / "in", budget_s=5.0)
        bad = problems(outcome)
        if bad:
            raise RuntimeError(f"{kind} parser misbehaved: {bad[0]}")

    replay = any(not a.startswith("-") and Path(a).is_file() for a in args)
    atheris.Setup([sys.argv[0], *args, *([] if replay else [str(corpus)])], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
