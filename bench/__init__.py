"""Benchmarks: each prints a table and writes JSON to bench/results/. Run them from the repository root as modules,
`python -m bench.scoring` (so `server`, `submissions`, `baselines` and `tests.utils` import from this checkout)."""
