"""The CPU image (``make container-cpu``) and apptainer, or a failure under T2S_REQUIRE_APPTAINER=1.

Every test here runs the real image: with ``T2S_REQUIRE_APPTAINER=1`` (CI) a missing apptainer
or image is a failure, never a skip. The CUDA cluster image (``make container``, ~20 min and 3 GB,
not built in CI: docs/containers.md) is tested where it has been built; with
``T2S_REQUIRE_CUDA_IMAGE=1`` its absence is a failure too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

CPU_IMAGE = Path(os.environ.get("T2S_CPU_IMAGE", REPO / "containers" / "text2sign-cpu.sif"))
CUDA_IMAGE = Path(os.environ.get("T2S_CUDA_IMAGE", REPO / "containers" / "text2sign.sif"))


def _missing(what: str, flag: str = "T2S_REQUIRE_APPTAINER") -> None:
    if os.environ.get(flag) == "1":
        pytest.fail(f"{flag}=1 but {what}")
    pytest.skip(f"{what}; set {flag}=1 to make this a failure")


@pytest.fixture(scope="session")
def image() -> Path:
    """The CPU image, after checking that apptainer can run it."""
    if shutil.which("apptainer") is None:
        _missing("no apptainer on PATH (run `make apptainer`)")
    if not CPU_IMAGE.is_file():
        _missing(f"{CPU_IMAGE} is missing (run `make container-cpu`)")
    return CPU_IMAGE.resolve()


@pytest.fixture(scope="session")
def cuda_image() -> Path:
    """The CUDA cluster image (``make container``), where it has been built."""
    if shutil.which("apptainer") is None:
        _missing("no apptainer on PATH (run `make apptainer`)")
    if not CUDA_IMAGE.is_file():
        _missing(f"{CUDA_IMAGE} is missing (run `make container`)", "T2S_REQUIRE_CUDA_IMAGE")
    return CUDA_IMAGE.resolve()
