"""A new release, rollback or promote is always signed later than the channel's newest release.

Signing times are whole seconds, and Expo devices take only an update
committed strictly later than the one they run: a rollback signed in the
same second as the release it replaces, or by a machine whose clock is
behind the server's, would never reach them. The server process here runs
an hour ahead (libfaketime), so the CLI's own clock alone is always too early.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hotpatch_cli.api import Api
from hotpatch_cli.commands.common import next_position
from hotpatch_core.testing import build_release
from hotpatch_server.fault_injection import libfaketime
from hotpatch_server.testing import APP_ID, server_process


def _libfaketime() -> str:
    found = libfaketime()
    if found is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return found


def test_the_next_signing_time_is_after_the_newest_release(tmp_path: Path) -> None:
    """The server's clock is an hour ahead: the next time is a second after its release."""
    ahead = datetime.now(UTC) + timedelta(hours=1)  # from this process's clock, faked or not
    with server_process(
        tmp_path / "server",
        LD_PRELOAD=_libfaketime(),
        FAKETIME=ahead.strftime("@%Y-%m-%d %H:%M:%S"),
        TZ="UTC",
    ) as server:
        built = build_release({"index.android.bundle": b"v1"}, app_id=APP_ID, version="1.0.1")
        published = server.publish(built.manifest, built.archive)
        assert published.status_code == 201, published.text
        on_server = datetime.fromisoformat(published.json()["createdAt"]).replace(
            microsecond=0, tzinfo=UTC
        )
        assert on_server > datetime.now(UTC)  # the premise: the CLI's clock is behind
        with Api(server.base_url, server.publisher_key) as api:
            sequence, created = next_position(api, APP_ID, "android", "production", 1)
            assert sequence == 2
            assert created > on_server
            assert created.microsecond == 0
            _, later = next_position(api, APP_ID, "android", "beta", 1)  # an empty channel
            assert later <= datetime.now(UTC)
