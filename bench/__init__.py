"""The benchmark runner of issue 8 (``python bench/run.py``; see run.py)."""
