"""Settings and fixtures for every test in the workspace.

The Hypothesis profiles: ``HYPOTHESIS_PROFILE=thorough`` runs every property
with 1000 examples instead of 100.

The React Native fixtures live in the repository (``fixtures/``): tests never
read anything outside the clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=1000
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _build_files(version: str) -> dict[str, bytes]:
    root = FIXTURES / "rn-build" / version
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def rn_builds() -> dict[str, dict[str, bytes]]:
    """Return the fixture app's two Android releases (``v1``, ``v2``): every file by its path."""
    return {version: _build_files(version) for version in ("v1", "v2")}


@pytest.fixture(scope="session")
def rn_app_source() -> Path:
    """Return the fixture app's source directory (package.json, package-lock.json, src/)."""
    return FIXTURES / "rn-app"
