"""Moving a channel: ``hotpatch rollback``, ``promote``, ``rollout`` and ``releases``."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import attrs

from hotpatch_cli.commands.common import (
    check_key,
    expiry,
    next_position,
    one_release,
    rollout_percent,
    signed_manifest,
    summary,
)
from hotpatch_cli.commands.expo import attach_expo, expo_options
from hotpatch_cli.context import Context
from hotpatch_cli.errors import ConflictError, UsageError
from hotpatch_cli.expo import ExpoOptions
from hotpatch_cli.output import table
from hotpatch_core.errors import HotPatchError
from hotpatch_core.publishing import ExpoUpdateView, ReleaseView
from hotpatch_core.release import sign_release
from hotpatch_core.wire import unstructure

__all__ = [
    "PromoteArgs",
    "RollbackArgs",
    "RolloutArgs",
    "promote",
    "release_result",
    "releases_list",
    "rollback",
    "rollout",
]


def release_result(ctx: Context, release: ReleaseView, expo: ExpoUpdateView | None) -> None:
    """Print a release the server answered with (and what expo-updates is served, if any)."""
    document: dict[str, object] = unstructure(release)
    if expo is not None:
        document["expo"] = unstructure(expo)
    ctx.output.result(document, summary(release))


@attrs.frozen
class RollbackArgs:
    """What ``hotpatch rollback`` was asked to do, checked."""

    platform: str
    channel: str
    version: str
    rollout: float
    #: None keeps the old release's ``mandatory``.
    mandatory: bool | None
    expires_in: timedelta | None
    key: Path | None
    expo: ExpoOptions | None

    @classmethod
    def parse(cls, args: argparse.Namespace) -> RollbackArgs:
        """Read and check the flags, before anything is asked of the server."""
        return cls(
            platform=args.platform,
            channel=args.channel,
            version=args.version,
            rollout=rollout_percent(args.rollout),
            mandatory=args.mandatory,
            expires_in=args.expires_in,
            key=Path(args.key) if args.key else None,
            expo=expo_options(args),
        )


def rollback(ctx: Context, args: argparse.Namespace) -> None:
    """Re-activate a version's content under a new signed manifest (the next sequence)."""
    asked = RollbackArgs.parse(args)
    app = ctx.app()
    key = ctx.signing_key(asked.key)
    with ctx.api() as api:
        epoch = check_key(ctx, api, app, key, asked.platform, asked.channel)
        source = one_release(api, app, asked.platform, asked.channel, asked.version)
        old = signed_manifest(api, source)
        sequence, created = next_position(api, app, asked.platform, asked.channel, epoch)
        manifest = attrs.evolve(
            old,
            epoch=epoch,
            sequence=sequence,
            created_at=created,
            rollback_of=source.manifest_id,
            expires_at=expiry(created, asked.expires_in),
            mandatory=old.mandatory if asked.mandatory is None else asked.mandatory,
        )
        ctx.output.step(f"rolling {app} {asked.platform}/{asked.channel} back to {asked.version} "
                        f"as sequence {manifest.sequence}")  # fmt: skip
        envelope = sign_release(manifest, [key])
        release = api.rollback(source.id, envelope, asked.rollout)
        expo = attach_expo(ctx, api, asked.expo, release, envelope)
    release_result(ctx, release, expo)


@attrs.frozen
class PromoteArgs:
    """What ``hotpatch promote`` was asked to do, checked."""

    platform: str
    #: The channels it goes from and to.
    source: str
    target: str
    version: str
    rollout: float
    expires_in: timedelta | None
    key: Path | None
    expo: ExpoOptions | None

    @classmethod
    def parse(cls, args: argparse.Namespace) -> PromoteArgs:
        """Read and check the flags, before anything is asked of the server."""
        if args.source == args.target:
            raise UsageError("--from and --to name the same channel")
        return cls(
            platform=args.platform,
            source=args.source,
            target=args.target,
            version=args.version,
            rollout=rollout_percent(args.rollout),
            expires_in=args.expires_in,
            key=Path(args.key) if args.key else None,
            expo=expo_options(args),
        )


def promote(ctx: Context, args: argparse.Namespace) -> None:
    """Publish a version's content from one channel on another (a new signed manifest)."""
    asked = PromoteArgs.parse(args)
    app = ctx.app()
    key = ctx.signing_key(asked.key)
    with ctx.api() as api:
        epoch = check_key(ctx, api, app, key, asked.platform, asked.target)
        source = one_release(api, app, asked.platform, asked.source, asked.version)
        if api.releases(app, platform=asked.platform, channel=asked.target, version=asked.version):
            raise ConflictError(f"{asked.version} is already on {asked.target}")
        old = signed_manifest(api, source)
        sequence, created = next_position(api, app, asked.platform, asked.target, epoch)
        try:
            manifest = attrs.evolve(
                old,
                channel=asked.target,
                epoch=epoch,
                sequence=sequence,
                created_at=created,
                rollback_of=None,
                expires_at=expiry(created, asked.expires_in),
            )
        except (HotPatchError, ValueError) as exc:
            raise UsageError(f"invalid --to channel: {exc}") from None
        ctx.output.step(f"promoting {asked.version} from {asked.source} to {asked.target}")
        envelope = sign_release(manifest, [key])
        release = api.promote(source.id, envelope, asked.rollout)
        expo = attach_expo(ctx, api, asked.expo, release, envelope)
    release_result(ctx, release, expo)


@attrs.frozen
class RolloutArgs:
    """What ``hotpatch rollout`` was asked to do, checked: a percentage, or pause / resume."""

    platform: str
    channel: str
    version: str
    percent: float | None
    paused: bool | None

    @classmethod
    def parse(cls, args: argparse.Namespace) -> RolloutArgs:
        """Read and check the flags, before anything is asked of the server."""
        if args.percent is not None and not 0 <= args.percent <= 100:
            raise UsageError("--percent is between 0 and 100")
        return cls(
            platform=args.platform,
            channel=args.channel,
            version=args.version,
            percent=args.percent,
            paused=True if args.pause else False if args.resume else None,
        )


def rollout(ctx: Context, args: argparse.Namespace) -> None:
    """Change a release's rollout percentage, or pause / resume it (advisory, unsigned)."""
    asked = RolloutArgs.parse(args)
    app = ctx.app()
    with ctx.api() as api:
        source = one_release(api, app, asked.platform, asked.channel, asked.version)
        release = api.change_rollout(source.id, percent=asked.percent, paused=asked.paused)
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
