"""The CPU image (``make container-cpu``) and apptainer, or a failure under T2S_REQUIRE_APPTAINER=1.

Every test here runs the real image: with ``T2S_REQUIRE_APPTAINER=1`` (CI) a missing apptainer
or image is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

CPU_IMAGE = Path(os.environ.get("T2S_CPU_IMAGE", REPO / "containers" / "text2sign-cpu.sif"))


def _missing(what: str) -> None:
    if os.environ.get("T2S_REQUIRE_APPTAINER") == "1":
        pytest.fail(f"T2S_REQUIRE_APPTAINER=1 but {what}")
    pytest.skip(f"{what}; set T2S_REQUIRE_APPTAINER=1 to make this a failure")


@pytest.fixture(scope="session")
def image() -> Path:
    """The CPU image, after checking that apptainer can run it."""
    if shutil.which("apptainer") is None:
        _missing("no apptainer on PATH (run `make apptainer`)")
    if not CPU_IMAGE.is_file():
        _missing(f"{CPU_IMAGE} is missing (run `make container-cpu`)")
    return CPU_IMAGE.resolve()
