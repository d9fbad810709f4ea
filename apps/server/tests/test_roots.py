"""Every version of an app's trust root, served to devices (docs/security.md A10)."""

from __future__ import annotations

import base64
from pathlib import Path

import attrs
import pytest

from hotpatch_core.keys import SigningKey
from hotpatch_core.testing import make_pki, rotate_pki
from hotpatch_core.trust import TimestampRole, sign_trust_root
from hotpatch_server.testing import APP_ID, Server, in_process_server


def _rotate(server: Server, envelope: bytes) -> int:
    response = server.client.put(
        f"/apps/{APP_ID}/trust-root",
        json={"trustRoot": base64.b64encode(envelope).decode()},
        headers=server.auth(server.admin_key),
    )
    return response.status_code


def test_every_root_version_is_served_exactly_as_installed(server: Server) -> None:
    """v1 from creation, v2 and v3 from rotations: each byte for byte, immutable; v4 is 404."""
    first = server.client.get(f"/apps/{APP_ID}/roots/1")
    assert first.status_code == 200
    assert first.content == server.pki.root_bytes
    assert "immutable" in first.headers["cache-control"]
    assert server.client.get(f"/apps/{APP_ID}/roots/2").status_code == 404  # a miss, cached
    v2 = rotate_pki(server.pki)
    v3 = rotate_pki(v2, new_root_keys=True)
    assert _rotate(server, v2.root_bytes) == 200
    assert _rotate(server, v3.root_bytes) == 200
    for version, expected in ((1, server.pki), (2, v2), (3, v3)):
        answer = server.client.get(f"/apps/{APP_ID}/roots/{version}")
        assert (answer.status_code, answer.content) == (200, expected.root_bytes)
    missing = server.client.get(f"/apps/{APP_ID}/roots/4")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_a_refused_rotation_adds_no_version(server: Server) -> None:
    """A root that does not chain is refused (422) and nothing is served for it."""
    thief = rotate_pki(rotate_pki(server.pki))  # v3, skipping v2
    assert _rotate(server, thief.root_bytes) == 422
    assert server.client.get(f"/apps/{APP_ID}/roots/3").status_code == 404
    assert server.client.get(f"/apps/{APP_ID}/roots/2").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/apps/{APP_ID}/roots/0", 422),
        (f"/apps/{APP_ID}/roots/-1", 422),
        (f"/apps/{APP_ID}/roots/abc", 422),
        (f"/apps/{APP_ID}/roots/1%0A", 422),
        (f"/apps/{APP_ID}/roots/%C2%B9", 422),  # superscript one
        (f"/apps/{APP_ID}/roots/1%D9%A3", 422),  # Arabic-Indic three
        (f"/apps/{APP_ID}/roots/" + "9" * 5000, 422),
        (f"/apps/{APP_ID}/roots/99999999999", 422),
        (f"/apps/{APP_ID}/roots/9999999999", 404),  # fits no column: no such version
        (f"/apps/{APP_ID}/roots/2147483647", 404),
        ("/apps/com.unknown.app/roots/1", 404),
        ("/apps/" + "a" * 129 + "/roots/1", 422),
        ("/apps/bad%00id/roots/1", 422),
    ],
)
def test_bad_root_requests_get_a_problem_never_a_500(
    server: Server, path: str, status: int
) -> None:
    """Malformed versions and app ids are 422, unknown ones 404."""
    response = server.client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def _stamped(server: Server, key: SigningKey, threshold: int = 1) -> bytes:
    """The next root of the app, naming ``key`` as its timestamp key."""
    extra = SigningKey.generate() if threshold > 1 else None
    keys = (key.public_key, *((extra.public_key,) if extra is not None else ()))
    root = attrs.evolve(
        server.pki.root, version=2, timestamp=TimestampRole(keys, threshold=threshold)
    )
    return sign_trust_root(root, server.pki.root_keys)


def test_a_root_naming_a_timestamp_key_this_server_does_not_sign_with_is_refused(
    server: Server,
) -> None:
    """Devices taking such a root would refuse every answer: it is refused, and nothing changes.

    The embedded server made its own key; a root naming another key, or asking
    for two signatures on each head, gets 422 naming the problem. The
    server's own key at a threshold of one is installed.
    """
    own = server.settings.timestamp_key
    assert own is not None
    for envelope, message in [
        (_stamped(server, SigningKey.generate()), "signs channel heads with key"),
        (_stamped(server, own, threshold=2), "with one key, not 2"),
    ]:
        response = server.client.put(
            f"/apps/{APP_ID}/trust-root",
            json={"trustRoot": base64.b64encode(envelope).decode()},
            headers=server.auth(server.admin_key),
        )
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
        assert server.client.get(f"/apps/{APP_ID}/roots/2").status_code == 404
    assert _rotate(server, _stamped(server, own)) == 200


def test_a_server_without_a_timestamp_key_refuses_roots_that_need_one(tmp_path: Path) -> None:
    """Outside the embedded default no key is made up; a root asking for heads says what to set."""
    pki = make_pki(timestamp=True)
    with in_process_server(tmp_path / "server", timestamp_key=None) as server:
        created = server.create_app("com.stamped.app", pki)
        assert created.status_code == 422, created.text
        assert "HOTPATCH_TIMESTAMP_KEY_FILE" in created.json()["detail"]
        assert server.client.get("/apps/com.stamped.app/roots/1").status_code == 404
