"""Finished explorations, kept for their record; their results are in BENCHMARKS.md."""
