"""Benchmarks: hybridtrace's backends side by side with libbpf-tools and BCC.

Run as ``python -m tools.bench`` (or ``python tools/bench/run.py``) from the
repository root, as root. See docs/benchmarks/README.md for the results.
"""
