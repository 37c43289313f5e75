"""`make bench`: load, baseline, NLU, memory and profile figures for BENCHMARKS.md."""
