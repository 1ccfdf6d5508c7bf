"""The benchmark runner (``python bench/run.py``; see run.py and README "Benchmark")."""
