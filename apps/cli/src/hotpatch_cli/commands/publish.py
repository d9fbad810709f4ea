"""``hotpatch release``: build (or take) a bundle, pack, sign and publish it, step by step.

The command's flags are read once into :class:`ReleaseArgs` (every check
that needs no server happens there), then :func:`release` runs the steps:
look at the channel, make the bundle, choose the files, sign, upload.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

import attrs

from hotpatch_cli.api import Api
from hotpatch_cli.build import (
    compile_hermes,
    default_bundle_command,
    find_hermesc,
    is_hermes_bytecode,
    run_bundle_command,
)
from hotpatch_cli.codepush import SIGNATURE_PATH, signature_file
from hotpatch_cli.commands.channels import release_result
from hotpatch_cli.commands.common import (
    check_key,
    expiry,
    next_position,
    rollout_percent,
    signed_files,
    signed_manifest,
)
from hotpatch_cli.commands.expo import attach_expo, expo_options
from hotpatch_cli.context import Context, now
from hotpatch_cli.errors import ConflictError, UsageError
from hotpatch_cli.expo import ExpoOptions, export_files
from hotpatch_cli.output import Output
from hotpatch_cli.pack import Packed, collect_files, pack_directory, release_manifest
from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform, manifest_id
from hotpatch_core.publishing import ExpoUpdateView, ReleaseView
from hotpatch_core.release import decode_release_envelope, sign_release
from hotpatch_core.versions import Version

__all__ = ["BUILD_MARKER", "ReleaseArgs", "release"]

BUILD_MARKER: Final = ".hotpatch-build"


@attrs.frozen
class ReleaseArgs:
    """What ``hotpatch release`` was asked to do, checked."""

    platform: Platform
    channel: str
    version: str
    rollout: float
    mandatory: bool
    binary_range: str
    expires_in: timedelta | None
    key: Path | None
    #: Where the bundle comes from: an Expo export, a prebuilt directory, or a build.
    expo_export: Path | None
    bundle_dir: Path | None
    bundle_command: str | None
    build_dir: Path
    project_dir: Path
    entry_file: str
    hermes: bool
    base_bytecode: Path | None
    compression: int
    codepush_signing_key: Path | None
    dry_run: bool
    expo: ExpoOptions | None

    @classmethod
    def parse(cls, args: argparse.Namespace) -> ReleaseArgs:
        """Read and check the flags, before anything is built or asked of the server."""
        try:
            Version.parse(args.version)
        except HotPatchError as exc:
            raise UsageError(f"invalid --version {args.version!r}: {exc}") from None
        rollout_percent(args.rollout)
        if args.expo_export and (args.hermes or args.bundle_dir or args.bundle_command):
            raise UsageError(
                "--expo-export publishes what `npx expo export` built: "
                "no --hermes, --bundle-dir or --bundle-command with it"
            )

        def path(value: str | None) -> Path | None:
            return None if value is None else Path(value)

        return cls(
            platform=Platform(args.platform),
            channel=args.channel,
            version=args.version,
            rollout=args.rollout,
            mandatory=args.mandatory,
            binary_range=args.binary_range,
            expires_in=args.expires_in,
            key=path(args.key),
            expo_export=path(args.expo_export),
            bundle_dir=path(args.bundle_dir),
            bundle_command=args.bundle_command,
            build_dir=Path(args.build_dir),
            project_dir=Path(args.project_dir),
            entry_file=args.entry_file,
            hermes=args.hermes,
            base_bytecode=path(args.base_bytecode),
            compression=args.compression,
            codepush_signing_key=path(args.codepush_signing_key),
            dry_run=args.dry_run,
            expo=expo_options(args),
        )


@attrs.frozen
class _Signed:
    """A packed release and its signed envelope."""

    packed: Packed
    envelope: bytes
    manifest_id: str
    sequence: int


def release(ctx: Context, namespace: argparse.Namespace) -> None:
    """Build (or take) a bundle, pack, sign and publish it."""
    args = ReleaseArgs.parse(namespace)
    app = ctx.app()
    key = ctx.signing_key(args.key)
    out = ctx.output
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        work = Path(tmp)
        out.step(f"checking {app} on {api.base_url}")
        epoch = check_key(ctx, api, app, key, args.platform.value, args.channel)
        previous = _previous_release(api, app, args)
        bundle_dir = _bundle(ctx, api, args, previous, work)
        files = _files(args, bundle_dir, work, out)
        signed = _sign(api, app, args, key, epoch, files, work, out)
        if args.dry_run:
            out.result(
                {"dryRun": True, "manifestId": signed.manifest_id, "sequence": signed.sequence,
                 "archive": attrs.asdict(signed.packed.info), "files": len(signed.packed.files)},
                f"dry run: nothing uploaded ({len(signed.packed.files)} files, "
                f"sequence {signed.sequence})",
            )  # fmt: skip
            return
        published, expo = _upload(ctx, api, app, args, signed)
    release_result(ctx, published, expo)


def _previous_release(api: Api, app: str, args: ReleaseArgs) -> ReleaseView | None:
    """Refuse a version the channel has; return the channel's newest release, if any."""
    platform = args.platform.value
    if api.releases(app, platform=platform, channel=args.channel, version=args.version):
        raise ConflictError(
            f"version {args.version} is already published on {app}/{platform}/{args.channel}",
            hint="bump --version, or use `hotpatch rollback` to re-activate it",
        )
    newest = api.releases(app, platform=platform, channel=args.channel, limit=1)
    return newest[0] if newest else None


def _bundle(
    ctx: Context, api: Api, args: ReleaseArgs, previous: ReleaseView | None, work: Path
) -> Path:
    """Return the directory of what to publish: taken, or built (and compiled to Hermes)."""
    out = ctx.output
    if args.expo_export:
        out.step(f"using the Expo export in {args.expo_export}")
        return args.expo_export
    if args.bundle_dir:
        bundle_dir = args.bundle_dir
        out.step(f"using the prebuilt bundle in {bundle_dir}")
        if args.hermes:  # compile a copy: never change the user's directory
            bundle_dir = Path(shutil.copytree(bundle_dir, work / "bundle", symlinks=True))
    else:
        bundle_dir = args.build_dir
        _prepare_build_dir(bundle_dir)
        command: str | Sequence[str] = args.bundle_command or default_bundle_command(
            args.platform, args.entry_file, bundle_dir.resolve()
        )
        shown = command if isinstance(command, str) else " ".join(command)
        out.step(f"building: {shown}")
        run_bundle_command(command, args.project_dir, quiet=out.as_json and not out.verbose)
    if args.hermes:
        _compile(ctx, api, args, bundle_dir, previous, work)
    return bundle_dir


def _prepare_build_dir(build_dir: Path) -> None:
    if build_dir.exists():
        if any(build_dir.iterdir()) and not (build_dir / BUILD_MARKER).exists():
            raise UsageError(
                f"{build_dir} is not empty and was not made by hotpatch",
                hint="pass an empty or new --build-dir",
            )
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    (build_dir / BUILD_MARKER).write_text("made by `hotpatch release`; emptied on every build\n")


def _compile(  # noqa: PLR0913, PLR0917 - the step's inputs
    ctx: Context,
    api: Api,
    args: ReleaseArgs,
    bundle_dir: Path,
    previous: ReleaseView | None,
    work: Path,
) -> None:
    """Compile the entry file to Hermes bytecode in place, against the previous release's."""
    entry = args.platform.entry_file
    bundle = bundle_dir / entry
    if not bundle.is_file():
        raise UsageError(f"no {entry} in {bundle_dir} to compile")
    hermesc = find_hermesc(args.project_dir)
    base = args.base_bytecode or _base_bytecode(ctx, api, previous, entry, work)
    ctx.output.step(
        f"compiling {entry} to Hermes bytecode" + (f" against {base.name}" if base else "")
    )
    compile_hermes(hermesc, bundle, base_bytecode=base)


def _base_bytecode(
    ctx: Context, api: Api, previous: ReleaseView | None, entry: str, work: Path
) -> Path | None:
    """Fetch the previous release's bytecode to compile against, if it is Hermes bytecode.

    The archive is checked against the release's signed manifest, as patch
    making does: hermesc never reads bytes the server changed after the
    release was signed.
    """
    if previous is None:
        ctx.output.step("no previous release: compiling without a base")
        return None
    ctx.output.step(f"looking for {previous.version}'s Hermes bytecode to compile against")
    manifest = signed_manifest(api, previous)
    if entry not in {f.path for f in manifest.files}:
        ctx.output.step(f"{previous.version} has no {entry}; compiling without a base")
        return None
    files = signed_files(api, previous, manifest, work, only={entry})
    base = work / "base.hbc"
    base.write_bytes(files[entry])
    if not is_hermes_bytecode(base):
        ctx.output.step(f"{previous.version} is not Hermes bytecode; compiling without a base")
        return None
    return base


def _files(args: ReleaseArgs, bundle_dir: Path, work: Path, out: Output) -> dict[str, Path]:
    """Choose the release's files: the bundle's, with the CodePush signature if asked."""
    if args.expo_export:
        files = export_files(bundle_dir, args.platform)
    else:
        files = {k: v for k, v in collect_files(bundle_dir).items() if k != BUILD_MARKER}
    entry = args.platform.entry_file
    if entry not in files:
        raise UsageError(
            f"{bundle_dir} has no {entry}", hint="check --entry-file and the bundle output name"
        )
    if args.codepush_signing_key:
        signed = work / "codepushrelease"
        signed.write_bytes(signature_file(files, args.codepush_signing_key, now()))
        files[SIGNATURE_PATH] = signed
        out.step(f"signed the CodePush package hash into {SIGNATURE_PATH}")
    return files


def _sign(  # noqa: PLR0913, PLR0917 - the step's inputs
    api: Api,
    app: str,
    args: ReleaseArgs,
    key: SigningKey,
    epoch: int,
    files: dict[str, Path],
    work: Path,
    out: Output,
) -> _Signed:
    """Pack the files and sign the manifest as the channel's next release."""
    total = sum(p.stat().st_size for p in files.values())
    out.step(f"packing {len(files)} files ({total / 1e6:.1f} MB)")
    packed = pack_directory(files, work / "release.zip", compresslevel=args.compression)
    sequence, created = next_position(api, app, args.platform.value, args.channel, epoch)
    manifest = release_manifest(
        app_id=app,
        platform=args.platform,
        channel=args.channel,
        binary_range=args.binary_range,
        version=args.version,
        epoch=epoch,
        sequence=sequence,
        packed=packed,
        created_at=created,
        mandatory=args.mandatory,
        expires_at=expiry(created, args.expires_in),
    )
    envelope = sign_release(manifest, [key])
    mid = manifest_id(decode_release_envelope(envelope).payload)
    out.step(
        f"signed {args.version} as sequence {manifest.sequence} (manifest {mid[:12]}…); "
        f"archive {packed.info.length / 1e6:.2f} MB, sha256 {packed.info.sha256[:12]}…"
    )
    return _Signed(packed, envelope, mid, manifest.sequence)


def _upload(
    ctx: Context, api: Api, app: str, args: ReleaseArgs, signed: _Signed
) -> tuple[ReleaseView, ExpoUpdateView | None]:
    """Upload the signed release (and serve it to expo-updates, if asked)."""
    out = ctx.output
    out.step("uploading")
    published = api.publish(
        app,
        signed.envelope,
        signed.packed.path,
        rollout=args.rollout,
        mandatory=args.mandatory,
        progress=lambda done: out.progress("upload", done, signed.packed.info.length),
    )
    return published, attach_expo(ctx, api, args.expo, published, signed.envelope)
