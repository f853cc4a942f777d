import sys

from text2sign import PYTHON_FLOOR

if sys.version_info < PYTHON_FLOOR:  # one line and exit 2, before anything fails to import
    print(f"text2sign: error: Python {sys.version.split()[0]} is older than "
          f"{'.'.join(map(str, PYTHON_FLOOR))}, the oldest the project supports (make venv)",
          file=sys.stderr)  # fmt: skip
    sys.exit(2)

from text2sign.cli import main  # noqa: E402

raise SystemExit(main())
