"""``hotpatch deployment-keys`` against a real server process."""

from __future__ import annotations

import httpx

from .conftest import APP, Cli, Stage


def _check(stage: Stage, key: str) -> httpx.Response:
    return httpx.get(
        f"{stage.server.base_url}/v0.1/public/codepush/update_check",
        params={"deployment_key": key, "app_version": "1.0.0", "client_unique_id": "d1"},
    )


def test_create_list_revoke(cli: Cli, stage: Stage) -> None:
    """A key is printed once, listed without its secret, and refused once revoked."""
    common = ("--api-url", stage.server.base_url, "--token", stage.admin_key, "--app", APP)
    created = cli.json(
        "deployment-keys", "create", "--platform", "ios", "--channel", "beta",
        "--name", "TestFlight", *common,
    )  # fmt: skip
    assert (created["platform"], created["channel"], created["name"]) == (
        "ios",
        "beta",
        "TestFlight",
    )
    assert _check(stage, created["key"]).status_code == 200

    listed = cli.run("deployment-keys", "list", *common)
    assert created["id"] in listed.stdout
    assert "TestFlight" in listed.stdout
    assert created["key"] not in listed.stdout

    text = cli.run("deployment-keys", "create", "--platform", "android", *common).stdout
    assert "CodePushDeploymentKey" in text

    revoked = cli.json("deployment-keys", "revoke", created["id"], *common)
    assert revoked["revokedAt"] is not None
    assert _check(stage, created["key"]).status_code == 404
    assert "revoked" in cli.run("deployment-keys", "list", *common).stdout


def test_a_publisher_cannot_make_keys(cli: Cli, stage: Stage) -> None:
    """Deployment keys are an admin's: a publisher key gets a clear refusal."""
    done = cli.run(
        "deployment-keys", "create", "--platform", "android",
        "--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "may not admin" in done.stderr
