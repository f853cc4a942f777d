"""Run an entry script (``jobs/submit.py``, ``jobs/sbatch_study.py``, ``jobs/status.py``) in the
project's Python, whatever ``python`` the user typed it with.

``python jobs/submit.py ...`` is the first command a new user types, often outside the venv. When
the interpreter lacks what the job layer needs (or is older than the project's floor), the script
runs again in the checkout's ``.venv`` (``make venv``) when there is one; else it stops with one
line that says what to do. Nothing here imports a third-party module (it runs before they exist).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from text2sign import PYTHON_FLOOR

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("yaml", "pydantic", "pandas", "submitit")  # what the scripts import (status: pandas)
REEXEC_MARK = "T2S_BOOTSTRAPPED"  # set in the re-run: never loop


def problem(version: tuple[int, ...] = tuple(sys.version_info), needed=NEEDED) -> str | None:
    """Why this interpreter cannot run the job layer, or None."""
    if tuple(version[:2]) < PYTHON_FLOOR:
        have = ".".join(map(str, version[:3]))
        return f"Python {have} is older than {'.'.join(map(str, PYTHON_FLOOR))}, the oldest the project supports"
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    return f"{sys.executable} lacks {', '.join(missing)}" if missing else None


def ensure(prog: str, venv: Path = REPO / ".venv") -> None:
    """Continue here, or run this script again in ``venv``'s Python, or exit 2 with one line."""
    why = problem()
    if why is None:
        return
    python = venv / "bin" / "python"
    if python.exists() and not os.environ.get(REEXEC_MARK):
        os.environ[REEXEC_MARK] = "1"
        os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])
    print(f"{prog}: error: {why}: run `make venv` once in {REPO} (then this command runs in its "
          ".venv by itself)", file=sys.stderr)  # fmt: skip
    raise SystemExit(2)
