"""Fixtures of the segment tests (helpers live in segments_testlib, a uniquely named module)."""

from segments_testlib import corpus_dir, gen  # noqa: F401
