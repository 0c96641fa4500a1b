"""Property-based robustness: every parser, fed mutated real files, never crashes or hangs
and reports every rejection with a position."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.harness import kinds, parse_bytes, problems, scratch, seeds

KINDS = kinds()


@st.composite
def mutated(draw, seed_bytes: list[bytes]):
    data = bytearray(draw(st.sampled_from(seed_bytes)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup", "zero_len"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "dup":
            j = min(len(data), i + draw(st.integers(1, 256)))
            data[j:j] = data[i:j]
        elif op == "zero_len":  # a length or count field set to an extreme value
            data[i : i + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"]))
    return bytes(data)


@pytest.mark.parametrize("kind", KINDS)
def test_parser_survives_mutated_real_inputs(kind):
    files = seeds(kind)[:12]
    if not files:
        pytest.skip(f"no seed files for {kind}")
    seed_bytes = [f.read_bytes() for f in files]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(mutated(seed_bytes))
    def run(data: bytes) -> None:
        with scratch() as d:
            from pathlib import Path

            outcome = parse_bytes(kind, data, Path(d), budget_s=10.0)
        assert problems(outcome) == []

    run()


@pytest.mark.parametrize("kind", KINDS)
def test_parser_on_empty_and_random_bytes(kind, tmp_path):
    for data in (b"", b"\x00", b"\xff" * 64, bytes(range(256)) * 4):
        outcome = parse_bytes(kind, data, tmp_path, budget_s=10.0)
        assert problems(outcome) == [], (kind, data[:16])
