"""``hotpatch deployment-keys``: the keys react-native-code-push apps carry.

A deployment key names one (app, platform, channel) on the server. An app
built with react-native-code-push puts it in ``CodePushDeploymentKey``
(Android strings.xml, iOS Info.plist). The key is printed once, when it is
created; rotating one is creating a new key, shipping a binary with it, and
revoking the old one when no installed app uses it any more.
"""

from __future__ import annotations

import argparse

from hotpatch_cli.context import Context
from hotpatch_cli.output import table
from hotpatch_core.wire import unstructure

__all__ = ["create", "list_keys", "revoke"]


def create(ctx: Context, args: argparse.Namespace) -> None:
    """Create a deployment key for one platform and channel; print it once."""
    app = ctx.app()
    with ctx.api() as api:
        row = api.create_deployment_key(app, args.platform, args.channel, args.name or "")
    ctx.output.result(
        unstructure(row),
        f"deployment key for {app} {row.platform}/{row.channel} (id {row.id}):\n"
        f"{row.key}\n\n"
        "Put it in the app as CodePushDeploymentKey (Android strings.xml, iOS Info.plist).\n"
        "It is not shown again.",
    )


def list_keys(ctx: Context, args: argparse.Namespace) -> None:  # noqa: ARG001 - handler signature
    """List the app's deployment keys (ids, not the keys)."""
    app = ctx.app()
    with ctx.api() as api:
        rows = api.deployment_keys(app)
    lines = [
        [
            r.id,
            r.platform,
            r.channel,
            r.name,
            r.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
            "revoked" if r.revoked_at else "active",
        ]
        for r in rows
    ]
    headers = ["id", "platform", "channel", "name", "created", "state"]
    text = table(headers, lines) if rows else f"{app} has no deployment keys"
    ctx.output.result([unstructure(r) for r in rows], text)


def revoke(ctx: Context, args: argparse.Namespace) -> None:
    """Revoke a deployment key: apps that carry it get 404 from then on."""
    app = ctx.app()
    with ctx.api() as api:
        row = api.revoke_deployment_key(app, args.key_id)
    ctx.output.result(
        unstructure(row), f"revoked deployment key {row.id} ({row.platform}/{row.channel})"
    )
