"""Benchmarks: `make bench` (python -m benchmarks) prints one JSON line per figure."""
