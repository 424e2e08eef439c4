"""The harness behind BENCHMARKS.md: `python -m benchmarks.suite.run --quick | --full`."""
