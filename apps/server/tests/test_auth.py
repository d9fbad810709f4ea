from __future__ import annotations

import asyncio
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_server.auth import AUDIENCE, ISSUER, checksum_ok
from hotpatch_server.models import ApiKey
from hotpatch_server.testing import APP_ID, OTHER_APP, Server


def _columns(server: Server, query: str) -> list[tuple[object, ...]]:
    async def go() -> list[tuple[object, ...]]:
        engine = create_async_engine(server.settings.database_url)
        async with engine.connect() as connection:
            rows = list((await connection.execute(text(query))).all())
        await engine.dispose()
        return [tuple(r) for r in rows]

    return asyncio.run(go())


def test_no_plaintext_key_in_the_database(server: Server) -> None:
    """Only sha256 hashes of API keys are stored (S2)."""
    key = server.create_key("viewer", [APP_ID])
    assert checksum_ok(key)
    assert key.startswith("hp_")
    dump = repr(_columns(server, "SELECT * FROM api_keys"))
    assert key not in dump
    assert key[3:20] not in dump


def test_checksum_rejects_typos_before_lookup(server: Server) -> None:
    """A key with one character changed fails its checksum: 401 (S2)."""
    key = server.create_key("viewer", [APP_ID])
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    response = server.client.get("/releases", headers=server.auth(typo))
    assert response.status_code == 401
    assert "checksum" in response.json()["detail"]


def test_revoked_key_rejected_at_once(server: Server) -> None:
    """A revoked key, and tokens issued from it, stop working immediately (S2)."""
    key_id, key = server.new_key("publisher", [APP_ID])
    tokens = server.client.post("/auth/token", json={"apiKey": key}).json()
    assert (
        server.client.delete(f"/keys/{key_id}", headers=server.auth(server.admin_key)).status_code
        == 200
    )
    assert server.client.get("/releases", headers=server.auth(key)).status_code == 401
    bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert server.client.get("/releases", headers=bearer).status_code == 401


def test_expired_key_rejected(server: Server) -> None:
    """A key past its expiry is refused (S2)."""
    expires = (server.clock() + timedelta(hours=1)).isoformat()
    key = server.create_key("viewer", [APP_ID], expiresAt=expires)
    assert server.client.get("/releases", headers=server.auth(key)).status_code == 200
    server.clock.advance(hours=2)
    assert server.client.get("/releases", headers=server.auth(key)).status_code == 401


def test_last_used_is_recorded(server: Server) -> None:
    """Using a key records when (S2)."""
    key = server.create_key("viewer", [APP_ID])
    server.client.get("/releases", headers=server.auth(key))
    listing = server.client.get("/keys", headers=server.auth(server.admin_key)).json()
    assert any(k["lastUsedAt"] for k in listing if k["role"] == "viewer")


def test_token_exchange_and_refresh_rotation(server: Server) -> None:
    """API key -> access + refresh; a refresh token works once (S3)."""
    tokens = server.client.post("/auth/token", json={"apiKey": server.publisher_key}).json()
    bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert server.client.get("/releases", headers=bearer).status_code == 200
    renewed = server.client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert renewed.status_code == 200
    again = server.client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert again.status_code == 401


def test_refresh_token_reuse_revokes_the_whole_family(server: Server) -> None:
    """Replaying a used refresh token revokes its live successor and its access tokens (S3)."""
    first = server.client.post("/auth/token", json={"apiKey": server.publisher_key}).json()
    second = server.client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200
    other = server.client.post("/auth/token", json={"apiKey": server.publisher_key}).json()

    replayed = server.client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replayed.status_code == 401
    assert "every token of its session is revoked" in replayed.json()["detail"]
    live = server.client.post("/auth/refresh", json={"refreshToken": second.json()["refreshToken"]})
    assert live.status_code == 401  # the thief's (or the holder's) successor is dead too
    for access in (first["accessToken"], second.json()["accessToken"]):
        bearer = {"Authorization": f"Bearer {access}"}
        assert server.client.get("/releases", headers=bearer).status_code == 401
    # Another session of the same key, and the key itself, are untouched.
    bearer = {"Authorization": f"Bearer {other['accessToken']}"}
    assert server.client.get("/releases", headers=bearer).status_code == 200
    assert server.client.get("/releases", headers=server.auth()).status_code == 200
    unknown = server.client.post("/auth/refresh", json={"refreshToken": "x" * 43})
    assert unknown.status_code == 401


def _forge(server: Server, **changes: object) -> str:
    now = int(server.clock().timestamp())
    claims = {"sub": "x", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 600}
    listing = server.client.get("/keys", headers=server.auth(server.admin_key)).json()
    claims["sub"] = listing[0]["id"]
    algorithm = str(changes.pop("alg", "HS256"))
    secret = changes.pop("secret", server.settings.jwt_secret)
    assert isinstance(secret, bytes)
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    if algorithm == "none":
        return jwt.encode(claims, "", algorithm="none")
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize(
    "changes",
    [
        {"alg": "none"},
        {"alg": "HS384"},
        {"aud": None},
        {"iss": None},
        {"aud": "other-service"},
        {"exp": 1},
        {"secret": b"y" * 48},
    ],
    ids=[
        "alg-none",
        "wrong-alg",
        "missing-aud",
        "missing-iss",
        "wrong-aud",
        "expired",
        "wrong-key",
    ],
)
def test_bad_jwts_rejected(server: Server, changes: dict[str, object]) -> None:
    """alg=none, another algorithm, missing or wrong aud/iss, expiry, wrong key -> 401 (S3)."""
    token = _forge(server, **changes)
    response = server.client.get("/releases", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text


def test_a_good_forged_claim_set_is_accepted(server: Server) -> None:
    """The forging helper itself makes valid tokens, so the rejections above mean something."""
    token = _forge(server)
    assert (
        server.client.get("/releases", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def test_credentials_for_one_app_get_403_on_another(server: Server) -> None:
    """A credential for app A gets 403 on every route of app B, by path and by body (S1)."""
    from hotpatch_core.testing import make_pki  # noqa: PLC0415

    other = make_pki()
    assert server.create_app(OTHER_APP, other).status_code == 201
    built = server.build(app_id=OTHER_APP, sequence=1)
    from hotpatch_core.release import sign_release  # noqa: PLC0415

    other_key = server.create_key("admin", [OTHER_APP])
    published = server.publish(
        built, envelope=sign_release(built.manifest, [other.publisher]), key=other_key
    )
    assert published.status_code == 201, published.text
    release_id = published.json()["id"]
    mine = server.publisher_key
    denied = [
        server.client.get(f"/releases/{release_id}", headers=server.auth(mine)),
        server.client.get(f"/releases?appId={OTHER_APP}", headers=server.auth(mine)),
        server.client.patch(
            f"/releases/{release_id}/rollout", json={"paused": True}, headers=server.auth(mine)
        ),
        server.client.patch(
            f"/releases/{release_id}/rollback", json={"manifest": ""}, headers=server.auth(mine)
        ),
        server.client.post(
            f"/releases/{release_id}/promote", json={"manifest": ""}, headers=server.auth(mine)
        ),
        server.client.delete(f"/releases/{release_id}", headers=server.auth(mine)),
        server.client.get(f"/apps/{OTHER_APP}", headers=server.auth(mine)),
        server.client.get(f"/audit?appId={OTHER_APP}", headers=server.auth(mine)),
        server.publish(server.build(app_id=OTHER_APP, sequence=2, version="2.0.0"), key=mine),
        server.client.post(
            "/keys",
            json={"name": "x", "role": "admin", "apps": [OTHER_APP]},
            headers=server.auth(mine),
        ),
    ]
    assert [r.status_code for r in denied] == [403] * len(denied), [r.text for r in denied]
    listing = server.client.get("/releases", headers=server.auth(mine)).json()
    assert all(r["appId"] == APP_ID for r in listing)


def test_schema_holds_no_private_keys(server: Server) -> None:
    """No table has a column for private key material (S7)."""
    from hotpatch_server.models import Base  # noqa: PLC0415

    names = {c.name for t in Base.metadata.tables.values() for c in t.columns}
    assert not {n for n in names if "private" in n or "secret" in n or n in {"key", "seed"}}
    assert {"key_hash", "token_hash"} <= names
    del server


def test_unauthenticated_requests_get_401_problem(server: Server) -> None:
    """No credential: 401 as problem+json with a WWW-Authenticate hint."""
    response = server.client.get("/releases")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert select(ApiKey) is not None


def test_key_changes_are_in_the_apps_audit_log(server: Server) -> None:
    """Creating and revoking a key shows in the audit log of each app it is scoped to."""
    server.create_key("viewer", [APP_ID])
    listing = server.client.get("/keys", headers=server.auth(server.admin_key)).json()
    viewer = next(k for k in listing if k["role"] == "viewer")
    server.client.delete(f"/keys/{viewer['id']}", headers=server.auth(server.admin_key))
    audit = server.client.get(
        f"/audit?appId={APP_ID}", headers=server.auth(server.admin_key)
    ).json()
    actions = [(e["action"], e["details"].get("key")) for e in audit]
    assert ("revoke-key", viewer["id"]) in actions
    assert ("create-key", viewer["id"]) in actions
    assert audit[0]["action"] == "revoke-key"
