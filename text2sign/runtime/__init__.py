"""The process a job starts: its rank, world size and device, its CPU threads, process-wide settings.

Shared by training and evaluation (both run under the same launchers) and by the CLI.
"""
