"""The pose environment (``make pose-venv``): tests that need it skip with the reason, or fail
under ``T2S_REQUIRE_POSE=1`` (CI), like every other component."""

from __future__ import annotations

import os

import pytest

from text2sign.pose import env as pose_env


@pytest.fixture(scope="session")
def pose():
    found = pose_env.find()
    if not found.ok:
        if os.environ.get("T2S_REQUIRE_POSE") == "1":
            pytest.fail(f"T2S_REQUIRE_POSE=1 but {found.reason}")
        pytest.skip(f"{found.reason}; set T2S_REQUIRE_POSE=1 to make this a failure")
    return found
