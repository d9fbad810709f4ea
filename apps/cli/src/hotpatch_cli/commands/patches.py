"""Differential updates: ``hotpatch patch`` and ``hotpatch embedded register``."""

from __future__ import annotations

import argparse
import base64
import tempfile
from pathlib import Path

import attrs

from hotpatch_cli.api import Api
from hotpatch_cli.commands.common import one_release, signed_files, signed_manifest
from hotpatch_cli.context import Context
from hotpatch_cli.errors import UsageError
from hotpatch_cli.pack import collect_files, pack_directory
from hotpatch_core.errors import HotPatchError
from hotpatch_core.publishing import EmbeddedFile, EmbeddedRegistration, ReleaseView
from hotpatch_core.versions import Version
from hotpatch_core.wire import unstructure
from hotpatch_diff import PatchSide, make_patch

__all__ = ["EmbeddedArgs", "PatchArgs", "embedded_register", "patch"]


def _release_side(api: Api, release: ReleaseView, work: Path) -> PatchSide:
    """Download a release's archive and read its files, checked against its signed manifest."""
    manifest = signed_manifest(api, release)
    files = signed_files(api, release, manifest, work)
    return PatchSide(release.manifest_id, manifest.files, lambda entry: files[entry.path])


@attrs.frozen
class PatchArgs:
    """What ``hotpatch patch`` was asked to do, checked: from one version to another."""

    platform: str
    channel: str
    source: str
    target: str

    @classmethod
    def parse(cls, args: argparse.Namespace) -> PatchArgs:
        """Read and check the flags, before anything is asked of the server."""
        if args.source == args.target:
            raise UsageError("--from and --to name the same version: there is nothing to patch")
        return cls(args.platform, args.channel, args.source, args.target)


def patch(ctx: Context, args: argparse.Namespace) -> None:
    """Make the patch between two releases locally and upload it (the server checks it)."""
    asked = PatchArgs.parse(args)
    app = ctx.app()
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        source = one_release(api, app, asked.platform, asked.channel, asked.source)
        target = one_release(api, app, asked.platform, asked.channel, asked.target)
        ctx.output.step(f"downloading {asked.source} and {asked.target}")
        base_side = _release_side(api, source, Path(tmp))
        target_side = _release_side(api, target, Path(tmp))
        ctx.output.step(f"diffing {len(target_side.files)} files")
        data, stats = make_patch(base_side, target_side)
        ctx.output.step(f"patch: {len(data):,} bytes ({stats.ops}); uploading")
        stored = api.upload_patch(target.id, source.manifest_id, data)
    saved = 1 - stored.size / stored.archive_size
    ctx.output.result(
        unstructure(stored),
        f"patch {asked.source} -> {asked.target}: {stored.size:,} bytes instead of "
        f"{stored.archive_size:,} ({saved * 100:.1f} % saved); devices on {asked.source} "
        "are offered it from now on",
    )


@attrs.frozen
class EmbeddedArgs:
    """What ``hotpatch embedded register`` was asked to do, checked."""

    platform: str
    native_version: str
    bundle_dir: Path

    @classmethod
    def parse(cls, args: argparse.Namespace) -> EmbeddedArgs:
        """Read and check the flags, before anything is read or asked of the server."""
        try:
            Version.parse_native(args.native_version)
        except HotPatchError as exc:
            raise UsageError(f"invalid --native-version: {exc}") from None
        return cls(args.platform, args.native_version, Path(args.bundle_dir))


def embedded_register(ctx: Context, args: argparse.Namespace) -> None:
    """Register the bundle shipped in a native version, so first updates can be patches."""
    asked = EmbeddedArgs.parse(args)
    app = ctx.app()
    files = collect_files(asked.bundle_dir)
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        packed = pack_directory(files, Path(tmp) / "embedded.zip")
        bundle = EmbeddedRegistration(
            platform=asked.platform,
            native_version=asked.native_version,
            archive=base64.b64encode(packed.path.read_bytes()).decode(),
            files=tuple(EmbeddedFile(e.path, e.sha256, e.size) for e in packed.files),
        )
        ctx.output.step(f"registering {len(files)} files as {app} {asked.platform} "
                        f"{asked.native_version}'s embedded bundle")  # fmt: skip
        registered = api.register_embedded(app, bundle)
    ctx.output.result(
        unstructure(registered),
        f"embedded bundle of {asked.platform} {asked.native_version} registered (id "
        f"{registered.base_id[:12]}…); devices on it can now be patched to new releases",
    )
