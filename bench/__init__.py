"""Benchmarks: `make bench` (python -m bench.run) runs them all; each writes bench/results/<name>.json."""
