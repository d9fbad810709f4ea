"""Shared fixtures for the core tests: a trust root, a device, a signed release."""

from __future__ import annotations

import pytest

from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity
from hotpatch_core.testing import PKI, BuiltRelease, build_release, make_pki
from hotpatch_core.versions import Version

FILES = {
    "index.android.bundle": b"var a=1;console.log('hotpatch');\n" * 50,
    "assets/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
}


@pytest.fixture(scope="session")
def pki() -> PKI:
    """A trust root with one root key and one unscoped publisher key."""
    return make_pki()


@pytest.fixture
def device() -> DeviceIdentity:
    """An Android device of com.example.app on the production channel, native 1.0.0."""
    return DeviceIdentity("com.example.app", Platform.ANDROID, "production", Version(1, 0, 0))


@pytest.fixture(scope="session")
def built() -> BuiltRelease:
    """Release 1.0.0 (sequence 1) of the example files."""
    return build_release(FILES)
