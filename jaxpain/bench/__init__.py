"""Benchmarks: importable, tested logic behind the thin scripts/bench_*.py."""
