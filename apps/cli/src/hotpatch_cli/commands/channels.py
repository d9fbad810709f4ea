"""Moving a channel: ``hotpatch rollback``, ``promote``, ``rollout`` and ``releases``."""

from __future__ import annotations

import argparse
from pathlib import Path

import attrs

from hotpatch_cli.commands.common import (
    check_key,
    expiry,
    next_position,
    one_release,
    signed_manifest,
    summary,
)
from hotpatch_cli.commands.expo import attach_expo, expo_options
from hotpatch_cli.context import Context
from hotpatch_cli.errors import ConflictError, UsageError
from hotpatch_cli.output import table
from hotpatch_core.errors import HotPatchError
from hotpatch_core.publishing import ExpoUpdateView, ReleaseView
from hotpatch_core.release import sign_release
from hotpatch_core.wire import unstructure

__all__ = ["promote", "release_result", "releases_list", "rollback", "rollout"]


def release_result(ctx: Context, release: ReleaseView, expo: ExpoUpdateView | None) -> None:
    """Print a release the server answered with (and what expo-updates is served, if any)."""
    document: dict[str, object] = unstructure(release)
    if expo is not None:
        document["expo"] = unstructure(expo)
    ctx.output.result(document, summary(release))


def rollback(ctx: Context, args: argparse.Namespace) -> None:
    """Re-activate a version's content under a new signed manifest (the next sequence)."""
    app = ctx.app()
    key = ctx.signing_key(Path(args.key) if args.key else None)
    options = expo_options(args)
    with ctx.api() as api:
        epoch = check_key(ctx, api, app, key, args.platform, args.channel)
        source = one_release(api, app, args.platform, args.channel, args.version)
        old = signed_manifest(api, source)
        sequence, created = next_position(api, app, args.platform, args.channel, epoch)
        manifest = attrs.evolve(
            old,
            epoch=epoch,
            sequence=sequence,
            created_at=created,
            rollback_of=source.manifest_id,
            expires_at=expiry(created, args.expires_in),
            mandatory=old.mandatory if args.mandatory is None else args.mandatory,
        )
        ctx.output.step(f"rolling {app} {args.platform}/{args.channel} back to {args.version} "
                        f"as sequence {manifest.sequence}")  # fmt: skip
        envelope = sign_release(manifest, [key])
        release = api.rollback(source.id, envelope, args.rollout)
        expo = attach_expo(ctx, api, options, release, envelope)
    release_result(ctx, release, expo)


def promote(ctx: Context, args: argparse.Namespace) -> None:
    """Publish a version's content from one channel on another (a new signed manifest)."""
    app = ctx.app()
    if args.source == args.target:
        raise UsageError("--from and --to name the same channel")
    key = ctx.signing_key(Path(args.key) if args.key else None)
    options = expo_options(args)
    with ctx.api() as api:
        epoch = check_key(ctx, api, app, key, args.platform, args.target)
        source = one_release(api, app, args.platform, args.source, args.version)
        if api.releases(app, platform=args.platform, channel=args.target, version=args.version):
            raise ConflictError(f"{args.version} is already on {args.target}")
        old = signed_manifest(api, source)
        sequence, created = next_position(api, app, args.platform, args.target, epoch)
        try:
            manifest = attrs.evolve(
                old,
                channel=args.target,
                epoch=epoch,
                sequence=sequence,
                created_at=created,
                rollback_of=None,
                expires_at=expiry(created, args.expires_in),
            )
        except (HotPatchError, ValueError) as exc:
            raise UsageError(f"invalid --to channel: {exc}") from None
        ctx.output.step(f"promoting {args.version} from {args.source} to {args.target}")
        envelope = sign_release(manifest, [key])
        release = api.promote(source.id, envelope, args.rollout)
        expo = attach_expo(ctx, api, options, release, envelope)
    release_result(ctx, release, expo)


def rollout(ctx: Context, args: argparse.Namespace) -> None:
    """Change a release's rollout percentage, or pause / resume it (advisory, unsigned)."""
    app = ctx.app()
    if args.percent is not None and not 0 <= args.percent <= 100:
        raise UsageError("--percent is between 0 and 100")
    paused = True if args.pause else False if args.resume else None
    with ctx.api() as api:
        source = one_release(api, app, args.platform, args.channel, args.version)
        release = api.change_rollout(source.id, percent=args.percent, paused=paused)
    release_result(ctx, release, None)


def _state(release: ReleaseView) -> str:
    return "archived" if not release.active else "paused" if release.paused else "active"


def releases_list(ctx: Context, args: argparse.Namespace) -> None:
    """List releases, newest first."""
    app = ctx.app()
    with ctx.api() as api:
        rows = api.releases(
            app,
            platform=args.platform,
            channel=args.channel,
            version=args.version,
            limit=args.limit,
        )
    lines = [
        [
            str(r.id), r.platform, r.channel, r.version, f"{r.epoch}.{r.sequence}",
            f"{r.rollout_percent:g}%", _state(r), "rollback" if r.rollback_of else "",
            f"{r.size / 1e6:.2f} MB", r.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
        ]
        for r in rows
    ]  # fmt: skip
    headers = ["id", "platform", "channel", "version", "seq", "rollout", "state", "kind", "size",
               "created"]  # fmt: skip
    text = table(headers, lines) if rows else f"no releases of {app} match"
    ctx.output.result([unstructure(r) for r in rows], text)
