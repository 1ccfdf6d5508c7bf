"""Benchmark scenarios, one module per group; each ``run(bench)`` coroutine
starts what it needs, records its results in ``bench.results`` and stops its
processes (the runner's ``ProcSet`` stops whatever is left)."""
