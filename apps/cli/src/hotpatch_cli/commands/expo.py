"""Serving releases to expo-updates: ``hotpatch expo ...`` and the ``--runtime-version`` flags."""

from __future__ import annotations

import argparse

from hotpatch_cli.api import Api
from hotpatch_cli.commands.common import signed_manifest
from hotpatch_cli.context import Context, now
from hotpatch_cli.errors import UsageError
from hotpatch_cli.expo import ExpoOptions, attach, sign
from hotpatch_core.expo import commit_time, roll_back_directive
from hotpatch_core.manifest import decode_manifest, manifest_id
from hotpatch_core.publishing import ExpoRollBack, ExpoUpdateView, ReleaseView
from hotpatch_core.release import decode_release_envelope
from hotpatch_core.wire import unstructure

__all__ = ["attach_expo", "expo_attach", "expo_options", "expo_rollback_to_embedded"]


def expo_options(args: argparse.Namespace) -> ExpoOptions | None:
    """Read the Expo flags: None when the release is not for expo-updates."""
    if args.runtime_version is None:
        if (
            getattr(args, "expo_export", None)
            or args.expo_signing_key
            or getattr(args, "expo_config", None)
        ):
            raise UsageError(
                "--runtime-version is required to serve a release to expo-updates",
                hint="the app's runtimeVersion (app.json), e.g. 1.0.0",
            )
        return None
    return ExpoOptions.from_args(
        args.runtime_version,
        getattr(args, "expo_config", None),
        args.expo_signing_key,
        args.expo_certificate,
        args.expo_key_id,
    )


def attach_expo(
    ctx: Context, api: Api, options: ExpoOptions | None, release: ReleaseView, envelope: bytes
) -> ExpoUpdateView | None:
    """Serve a just-published release to expo-updates too, when asked to; return what was served."""
    if options is None:
        return None
    payload = decode_release_envelope(envelope).payload
    return attach(
        api, release.id, decode_manifest(payload), manifest_id(payload), options, ctx.output.step
    )


def expo_attach(ctx: Context, args: argparse.Namespace) -> None:
    """Serve an already published release to expo-updates (optionally signed)."""
    options = expo_options(args)
    if options is None:
        raise UsageError("--runtime-version is required", hint="the app's runtimeVersion")
    with ctx.api() as api:
        shown = api.release(args.release_id)
        manifest = signed_manifest(api, shown)
        served = attach(api, shown.id, manifest, shown.manifest_id, options, ctx.output.step)
    signed = f", signed with keyid {served.key_id!r}" if served.signed else ", unsigned"
    ctx.output.result(
        unstructure(served),
        f"release {args.release_id} is served to expo-updates as update {served.update_id} "
        f"(runtime {served.runtime_version}{signed})",
    )


def expo_rollback_to_embedded(ctx: Context, args: argparse.Namespace) -> None:
    """Send one Expo channel's runtime version back to the bundle embedded in the binary."""
    app = ctx.app()
    options = expo_options(args)
    if options is None:
        raise UsageError("--runtime-version is required", hint="the app's runtimeVersion")
    when = commit_time(now())
    rollback = ExpoRollBack(
        platform=args.platform,
        runtime_version=options.runtime_version,
        commit_time=when,
        channel=args.channel,
    )
    if options.signing_key is not None:
        rollback = sign(options, roll_back_directive(when), rollback)
    with ctx.api() as api:
        directive = api.expo_roll_back(app, rollback)
    signed = f", signed with keyid {directive.key_id!r}" if directive.signed else ", unsigned"
    ctx.output.result(
        unstructure(directive),
        f"{app} {args.platform}/{args.channel}, runtime {options.runtime_version}: devices go back "
        f"to their embedded bundle (committed {when}{signed}); publish a new update to move "
        "them forward again",
    )
