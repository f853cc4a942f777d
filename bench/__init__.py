"""Benchmarks behind ``make bench``: each module's ``run()`` returns a Section for BENCHMARKS.md."""
