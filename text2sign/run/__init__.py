"""The run-dir contract: what one run writes, and how it is read back safely.

``rundir.py`` names every file of a run dir and its ``status.json``; ``runlock.py`` keeps one
trainer per run dir; ``writers.py`` and ``telemetry.py`` write the metrics; ``metadata.py`` and
``summary.py`` what a run says about itself; ``weights.py`` and ``safeload.py`` read checkpoints
without executing code.
"""
