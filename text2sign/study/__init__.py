"""A study: many runs → records → statistics → tables, report and cost.

``collect.py`` is the collector's entry; data flows records.py → comparison.py (statistics) →
tables.py / report.py, with cost.py (sacct), provenance.py and settle.py (runs that ended without
a word) beside them; ``slurm_query.py`` is the one place that asks SLURM.
"""
