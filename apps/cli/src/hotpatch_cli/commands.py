"""What each command does. The parser (``hotpatch_cli.main``) maps flags onto these."""

from __future__ import annotations

import argparse
import base64
import getpass
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import attrs

from hotpatch_cli.api import Api
from hotpatch_cli.build import (
    compile_hermes,
    default_bundle_command,
    find_hermesc,
    is_hermes_bytecode,
    run_bundle_command,
)
from hotpatch_cli.codepush import SIGNATURE_PATH, codepush_key_pair, signature_file
from hotpatch_cli.config import Settings, save_login
from hotpatch_cli.errors import AuthError, ConflictError, NotFoundError, ServerError, UsageError
from hotpatch_cli.expo import ExpoOptions, attach, export_files, sign
from hotpatch_cli.keys import (
    build_trust_root,
    load_public_key,
    load_signing_key,
    publisher_snippet,
    write_private,
)
from hotpatch_cli.output import Output, table
from hotpatch_cli.pack import collect_files, pack_directory, release_manifest
from hotpatch_core.archive import MemorySink, extract_archive
from hotpatch_core.errors import HotPatchError
from hotpatch_core.expo import commit_time, roll_back_directive
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform, ReleaseManifest, decode_manifest, manifest_id
from hotpatch_core.release import decode_release_envelope, sign_release
from hotpatch_core.trust import (
    PublisherKey,
    Scope,
    TimestampRole,
    load_trust_root,
    rotate_trust_root,
)
from hotpatch_core.versions import Version
from hotpatch_diff import PatchSide, make_patch

__all__ = ["Context"]

BUILD_MARKER: Final = ".hotpatch-build"


@attrs.define
class Context:
    """What every command gets: settings, output and the environment."""

    settings: Settings
    output: Output
    env: Mapping[str, str]
    stdin_is_tty: bool

    def api(self) -> Api:
        """Return a client of the configured server, or explain how to configure one."""
        if not self.settings.api_url:
            raise UsageError(
                "no API URL", hint="run `hotpatch login`, pass --api-url or set HOTPATCH_API_URL"
            )
        return Api(self.settings.api_url, self.settings.token)

    def app(self) -> str:
        """Return the app id from --app, HOTPATCH_APP or the config."""
        if not self.settings.app:
            raise UsageError(
                "no app", hint="pass --app, set HOTPATCH_APP, or `hotpatch login --app`"
            )
        return self.settings.app

    def signing_key(self, path: Path | None) -> SigningKey:
        """Return the signing key: HOTPATCH_SIGNING_KEY, else --key, else the default file."""
        file = path or Path(
            self.env.get("HOTPATCH_SIGNING_KEY_FILE") or self.settings.default_key_path
        )
        return load_signing_key(None if path else self.settings.signing_key_pem, file)

    def ask(self, prompt: str, *, secret: bool = False) -> str:
        """Prompt on a terminal; never when stdin is not one."""
        if not self.stdin_is_tty:
            raise UsageError(f"{prompt.rstrip(': ')} is required and stdin is not a terminal")
        answer = getpass.getpass(prompt) if secret else input(prompt)
        if not answer.strip():
            raise UsageError(f"{prompt.rstrip(': ')} is required")
        return answer.strip()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _expiry(created: datetime, args: argparse.Namespace) -> datetime | None:
    """When the release being signed expires (``--expires-in``; None: never)."""
    lifetime: timedelta | None = args.expires_in
    return None if lifetime is None else created + lifetime


# --- login -----------------------------------------------------------------


def login(ctx: Context, _args: argparse.Namespace) -> None:
    """Check the endpoint and token against the server, then store them (0600)."""
    s = ctx.settings
    api_url = s.api_url or ctx.ask("API endpoint (e.g. https://updates.example.com): ")
    token = s.token or ctx.ask("API token: ", secret=True)
    with Api(api_url, token) as api:
        api.check_credentials(s.app)
    path = save_login(s.home, api_url=api_url, token=token, app=s.app)
    ctx.output.result(
        {"apiUrl": api_url, "app": s.app, "config": str(path)},
        f"logged in to {api_url}{f' for {s.app}' if s.app else ''}; saved to {path}",
    )


# --- keys ------------------------------------------------------------------


def _scope(args: argparse.Namespace, ctx: Context) -> Scope:
    apps = tuple(args.scope_app or [ctx.settings.app or "*"])
    try:
        return Scope(apps, tuple(args.scope_platform or ["*"]), tuple(args.scope_channel or ["*"]))
    except (HotPatchError, ValueError) as exc:
        raise UsageError(f"invalid scope: {exc}") from None


def _describe_key(ctx: Context, key: SigningKey, args: argparse.Namespace, path: str) -> None:
    public = key.public_key
    snippet = publisher_snippet(public, args.name, _scope(args, ctx))
    ctx.output.result(
        {
            "keyId": public.key_id,
            "publicKeyPem": public.to_pem().decode(),
            "path": path,
            "trustRootPublisher": snippet,
        },
        f"key id: {public.key_id}\n"
        f"key file: {path}\n\n{public.to_pem().decode()}\n"
        "Add it to the app's trust root (hotpatch trust-root create --publisher ...), or as\n"
        'this entry of its "publishers":\n\n' + json.dumps(snippet, indent=2),
    )


def keys_generate(ctx: Context, args: argparse.Namespace) -> None:
    """Create an Ed25519 signing key (PKCS#8 PEM, 0600); ``--root`` makes a root key."""
    if args.root:
        if not args.out:
            raise UsageError("a root key needs --out FILE (keep it offline, not in the checkout)")
        key = SigningKey.generate()
        write_private(Path(args.out), key.to_pem(), force=args.force)
        public = key.public_key
        ctx.output.result(
            {"keyId": public.key_id, "publicKeyPem": public.to_pem().decode(), "path": args.out,
             "role": "root"},
            f"root key id: {public.key_id}\nkey file: {args.out}\n\n"
            "A root key signs the app's trust root, never a release: use it with\n"
            f"  hotpatch trust-root create --root-key {args.out} ...\n"
            "and keep the file offline (not in the app's repository, not on CI).",
        )  # fmt: skip
        return
    path = Path(args.out) if args.out else ctx.settings.default_key_path
    key = SigningKey.generate()
    write_private(path, key.to_pem(), force=args.force)
    _describe_key(ctx, key, args, str(path))


def keys_generate_codepush(ctx: Context, args: argparse.Namespace) -> None:
    """Create an RSA key pair for CodePush code signing (the private key PEM is 0600)."""
    private = Path(args.out)
    public = Path(args.public_out) if args.public_out else private.with_suffix(".pub.pem")
    if public.exists() and not args.force:
        raise ConflictError(f"{public} exists", hint="use --force to replace it")
    private_pem, public_pem = codepush_key_pair(args.bits)
    write_private(private, private_pem, force=args.force)
    public.write_bytes(public_pem)
    ctx.output.result(
        {"privateKey": str(private), "publicKey": str(public), "publicKeyPem": public_pem.decode()},
        f"CodePush signing key: {private} (keep it secret, like the HotPatch signing key)\n"
        f"public key: {public}\n\n"
        "Put the public key in the app as CodePushPublicKey (strings.xml / Info.plist), and "
        "publish with\n"
        f"  hotpatch release ... --codepush-signing-key {private}",
    )


def keys_show(ctx: Context, args: argparse.Namespace) -> None:
    """Print the signing key's id, public key and trust-root entry."""
    key = ctx.signing_key(Path(args.key) if args.key else None)
    where = (
        "HOTPATCH_SIGNING_KEY"
        if ctx.settings.signing_key_pem and not args.key
        else str(args.key or ctx.settings.default_key_path)
    )
    _describe_key(ctx, key, args, where)


def keys_export_public(ctx: Context, args: argparse.Namespace) -> None:
    """Write the public key (SPKI PEM) to --out or stdout."""
    key = ctx.signing_key(Path(args.key) if args.key else None)
    pem = key.public_key.to_pem()
    if args.out:
        Path(args.out).write_bytes(pem)
        ctx.output.result({"keyId": key.public_key.key_id, "path": args.out}, f"wrote {args.out}")
    else:
        ctx.output.result(
            {"keyId": key.public_key.key_id, "publicKeyPem": pem.decode()}, pem.decode()
        )


# --- trust roots -------------------------------------------------------------


def _publishers(args: argparse.Namespace, ctx: Context) -> list[PublisherKey]:
    scope = _scope(args, ctx)
    expires = _now() + timedelta(days=args.publisher_days) if args.publisher_days else None
    found = []
    for index, item in enumerate(args.publisher or []):
        path, _, name = item.partition(":")
        found.append(
            PublisherKey(
                load_public_key(Path(path)), name or f"publisher-{index + 1}", scope, expires
            )
        )
    return found


def _root_keys(paths: list[str] | None) -> list[SigningKey]:
    return [load_signing_key(None, Path(p)) for p in paths or []]


def _timestamp(paths: list[str] | None) -> TimestampRole | None:
    """Return the timestamp role of the ``--timestamp-key`` files (any one key must sign)."""
    if not paths:
        return None
    keys = {}
    for path in paths:
        key = load_public_key(Path(path))
        keys[key.key_id] = key
    return TimestampRole(tuple(keys.values()))


def trust_root_create(ctx: Context, args: argparse.Namespace) -> None:
    """Create and sign an app's first trust root."""
    root, data = build_trust_root(
        root_keys=_root_keys(args.root_key),
        threshold=args.threshold,
        publishers=_publishers(args, ctx),
        version=1,
        epoch=args.epoch,
        expires_at=_now() + timedelta(days=args.days) if args.days else None,
        timestamp=_timestamp(args.timestamp_key),
    )
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists already", hint="pass --force to replace it")
    out.write_bytes(data)
    ctx.output.result(
        {"path": str(out), "version": root.version, "epoch": root.epoch,
         "rootKeys": [k.key_id for k in root.root_keys],
         "publishers": [p.key_id for p in root.publishers],
         "timestampKeys": [k.key_id for k in root.timestamp.keys] if root.timestamp else []},
        f"wrote trust root v{root.version} (epoch {root.epoch}) to {out}: "
        f"{root.root_threshold} of {len(root.root_keys)} root keys, "
        f"{len(root.publishers)} publisher key(s)"
        + (", channel heads required" if root.timestamp else "")
        + ". Embed this file in the app, and create the "
        f"app on the server with it (hotpatch-server create-app ID --trust-root {out}).",
    )  # fmt: skip


def trust_root_rotate(ctx: Context, args: argparse.Namespace) -> None:
    """Sign trust root N+1 with the current root keys and the new ones; optionally install it."""
    current_path = Path(args.current)
    try:
        current = load_trust_root(current_path.read_bytes())
    except (OSError, HotPatchError) as exc:
        raise UsageError(f"cannot use {current_path}: {exc}") from None
    old_keys = _root_keys(args.old_root_key)
    new_keys = _root_keys(args.root_key) or old_keys
    publishers = _publishers(args, ctx) or list(current.publishers)
    root, _ = build_trust_root(
        root_keys=new_keys,
        threshold=args.threshold or current.root_threshold,
        publishers=publishers,
        version=current.version + 1,
        epoch=current.epoch + 1 if args.bump_epoch else current.epoch,
        expires_at=_now() + timedelta(days=args.days) if args.days else current.expires_at,
        timestamp=None
        if args.no_timestamp_key
        else _timestamp(args.timestamp_key) or current.timestamp,
        release_thresholds=current.release_thresholds,
    )
    from hotpatch_core.trust import sign_trust_root  # noqa: PLC0415 - signed by both sets

    signers = {k.public_key.key_id: k for k in [*old_keys, *new_keys]}
    data = sign_trust_root(root, list(signers.values()))
    try:
        rotate_trust_root(current, data)
    except HotPatchError as exc:
        raise UsageError(f"the new root would not be accepted: {exc}") from None
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists already", hint="pass --force to replace it")
    out.write_bytes(data)
    document: dict[str, Any] = {"path": str(out), "version": root.version, "epoch": root.epoch}
    if args.upload:
        with ctx.api() as api:
            api_app = ctx.app()
            api._send(  # noqa: SLF001 - the one admin call the CLI makes
                "PUT",
                f"/apps/{api_app}/trust-root",
                json={"trustRoot": base64.b64encode(data).decode()},
            )
        document["installedOn"] = api_app
    ctx.output.result(
        document,
        f"wrote trust root v{root.version} (epoch {root.epoch}) to {out}"
        + (f"; installed on {document['installedOn']}" if args.upload else ""),
    )


# --- finding releases -------------------------------------------------------


def _one_release(api: Api, app: str, platform: str, channel: str, version: str) -> dict[str, Any]:
    rows = api.releases(app, platform=platform, channel=channel, version=version)
    if not rows:
        raise NotFoundError(f"no release {version} of {app} on {platform}/{channel}")
    originals = [r for r in rows if r.get("rollbackOf") is None]
    chosen: dict[str, Any] = (originals or rows)[0]
    return chosen


def _next_position(
    api: Api, app: str, platform: str, channel: str, epoch: int
) -> tuple[int, datetime]:
    """Return the next sequence on the channel, and a signing time after its newest release's.

    Times are whole seconds, and Expo devices take only an update committed
    strictly later than the one they run: a rollback signed in the same
    second as the release it replaces would never reach them.
    """
    newest = api.releases(app, platform=platform, channel=channel, limit=1)
    created = _now()
    if newest:
        previous = datetime.fromisoformat(str(newest[0]["createdAt"])).replace(microsecond=0)
        if previous.tzinfo is None:  # the server's times are UTC; SQLite drops the offset
            previous = previous.replace(tzinfo=UTC)
        created = max(created, previous + timedelta(seconds=1))
    if not newest or int(newest[0]["epoch"]) != epoch:
        return 1, created
    return int(newest[0]["sequence"]) + 1, created


def _check_key(  # noqa: PLR0913, PLR0917 - who signs what, where
    ctx: Context, api: Api, app: str, key: SigningKey, platform: str, channel: str
) -> int:
    """Refuse a key the app's trust root does not certify here; return the root's epoch."""
    document = api.app(app)
    key_id = key.public_key.key_id
    for publisher in document.get("publishers", []):
        if publisher.get("keyId") != key_id:
            continue
        scope = publisher.get("scope", {})
        try:
            covered = Scope(
                tuple(scope.get("apps", [])),
                tuple(scope.get("platforms", [])),
                tuple(scope.get("channels", [])),
            ).covers(app, platform, channel)
        except (HotPatchError, ValueError):
            covered = False
        if not covered:
            raise AuthError(
                f"signing key {key_id[:12]}… may not sign for {app}/{platform}/{channel}",
                hint="use a key whose trust-root scope covers this channel",
            )
        ctx.output.detail(f"signing key {key_id[:12]}… is publisher {publisher.get('name')!r}")
        return int(document["epoch"])
    raise AuthError(
        f"signing key {key_id[:12]}… is not a publisher key of {app}'s trust root",
        hint="use the right --key, or add it to the trust root and rotate",
    )


def _source_manifest(api: Api, release: dict[str, Any]) -> ReleaseManifest:
    shown = api.release(int(release["id"]))
    try:
        envelope = decode_release_envelope(base64.b64decode(shown["manifest"]))
        return decode_manifest(envelope.payload)
    except (HotPatchError, KeyError, ValueError) as exc:
        raise UsageError(f"release {release['id']} has an unreadable manifest: {exc}") from None


def _summary(document: dict[str, Any]) -> str:
    return (
        f"release {document['id']}: {document['appId']} {document['platform']}/"
        f"{document['channel']} {document['version']} (epoch {document['epoch']}, sequence "
        f"{document['sequence']}), rollout {document['rolloutPercent']:g} %"
        + (", paused" if document.get("paused") else "")
        + f"\nmanifest {document['manifestId']}\ndownload {document.get('downloadUrl', '-')}"
    )


# --- release ------------------------------------------------------------------


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


def _base_bytecode(
    ctx: Context, api: Api, previous: dict[str, Any] | None, entry: str, work: Path
) -> Path | None:
    """Fetch the previous release's bytecode to compile against, if it is Hermes bytecode.

    The archive is checked against the release's signed manifest, as
    :func:`_release_side` does: hermesc never reads bytes the server
    changed after the release was signed.
    """
    if previous is None or not previous.get("downloadUrl"):
        ctx.output.step("no previous release: compiling without a base")
        return None
    ctx.output.step(f"looking for {previous['version']}'s Hermes bytecode to compile against")
    manifest = _source_manifest(api, previous)
    if entry not in {f.path for f in manifest.files}:
        ctx.output.step(f"{previous['version']} has no {entry}; compiling without a base")
        return None
    try:
        files = _signed_files(api, previous, manifest, work, only={entry})
    except HotPatchError as exc:
        raise ServerError(
            f"{previous['version']}'s archive on the server does not match its signed "
            f"manifest ({type(exc).__name__}: {exc})",
            hint="the server or its storage changed a published archive; "
            "pass --base-bytecode FILE, or investigate before publishing",
        ) from None
    base = work / "base.hbc"
    base.write_bytes(files[entry])
    if not is_hermes_bytecode(base):
        ctx.output.step(f"{previous['version']} is not Hermes bytecode; compiling without a base")
        return None
    return base


def release(ctx: Context, args: argparse.Namespace) -> None:  # noqa: PLR0912, PLR0915 - one pipeline, step by step
    """Build (or take) a bundle, pack, sign and publish it."""
    app = ctx.app()
    platform = Platform(args.platform)
    try:
        Version.parse(args.version)
    except HotPatchError as exc:
        raise UsageError(f"invalid --version {args.version!r}: {exc}") from None
    if not 0 <= args.rollout <= 100:
        raise UsageError("--rollout is a percentage between 0 and 100")
    key = ctx.signing_key(Path(args.key) if args.key else None)
    expo = _expo_options(args)
    if args.expo_export and (args.hermes or args.bundle_dir or args.bundle_command):
        raise UsageError(
            "--expo-export publishes what `npx expo export` built: "
            "no --hermes, --bundle-dir or --bundle-command with it"
        )
    out = ctx.output
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        work = Path(tmp)
        out.step(f"checking {app} on {api.base_url}")
        epoch = _check_key(ctx, api, app, key, platform.value, args.channel)
        existing = api.releases(
            app, platform=platform.value, channel=args.channel, version=args.version
        )
        if existing:
            raise ConflictError(
                f"version {args.version} is already published on "
                f"{app}/{platform.value}/{args.channel}",
                hint="bump --version, or use `hotpatch rollback` to re-activate it",
            )
        newest = api.releases(app, platform=platform.value, channel=args.channel, limit=1)
        if args.expo_export:
            bundle_dir = Path(args.expo_export)
            out.step(f"using the Expo export in {bundle_dir}")
        elif args.bundle_dir:
            bundle_dir = Path(args.bundle_dir)
            out.step(f"using the prebuilt bundle in {bundle_dir}")
            if args.hermes:  # compile a copy: never change the user's directory
                bundle_dir = Path(shutil.copytree(bundle_dir, work / "bundle", symlinks=True))
        else:
            bundle_dir = Path(args.build_dir)
            _prepare_build_dir(bundle_dir)
            command = args.bundle_command or default_bundle_command(
                platform, args.entry_file, bundle_dir.resolve()
            )
            shown = command if isinstance(command, str) else " ".join(command)
            out.step(f"building: {shown}")
            run_bundle_command(
                command, Path(args.project_dir), quiet=out.as_json and not out.verbose
            )
        entry = platform.entry_file
        if args.hermes:
            bundle = bundle_dir / entry
            if not bundle.is_file():
                raise UsageError(f"no {entry} in {bundle_dir} to compile")
            hermesc = find_hermesc(Path(args.project_dir))
            base = (
                Path(args.base_bytecode)
                if args.base_bytecode
                else _base_bytecode(ctx, api, newest[0] if newest else None, entry, work)
            )
            out.step(
                f"compiling {entry} to Hermes bytecode" + (f" against {base.name}" if base else "")
            )
            compile_hermes(hermesc, bundle, base_bytecode=base)
        if args.expo_export:
            files = export_files(bundle_dir, platform)
        else:
            files = {k: v for k, v in collect_files(bundle_dir).items() if k != BUILD_MARKER}
        if entry not in files:
            raise UsageError(
                f"{bundle_dir} has no {entry}", hint="check --entry-file and the bundle output name"
            )
        if args.codepush_signing_key:
            signed = work / "codepushrelease"
            signed.write_bytes(signature_file(files, Path(args.codepush_signing_key), _now()))
            files[SIGNATURE_PATH] = signed
            out.step(f"signed the CodePush package hash into {SIGNATURE_PATH}")
        total = sum(p.stat().st_size for p in files.values())
        out.step(f"packing {len(files)} files ({total / 1e6:.1f} MB)")
        packed = pack_directory(files, work / "release.zip", compresslevel=args.compression)
        sequence, created = _next_position(api, app, platform.value, args.channel, epoch)
        manifest = release_manifest(
            app_id=app,
            platform=platform,
            channel=args.channel,
            binary_range=args.binary_range,
            version=args.version,
            epoch=epoch,
            sequence=sequence,
            packed=packed,
            created_at=created,
            mandatory=args.mandatory,
            expires_at=_expiry(created, args),
        )
        envelope = sign_release(manifest, [key])
        mid = manifest_id(decode_release_envelope(envelope).payload)
        out.step(
            f"signed {args.version} as sequence {manifest.sequence} (manifest {mid[:12]}…); "
            f"archive {packed.info.length / 1e6:.2f} MB, sha256 {packed.info.sha256[:12]}…"
        )
        if args.dry_run:
            out.result(
                {"dryRun": True, "manifestId": mid, "sequence": manifest.sequence,
                 "archive": attrs.asdict(packed.info), "files": len(packed.files)},
                f"dry run: nothing uploaded ({len(packed.files)} files, "
                f"sequence {manifest.sequence})",
            )  # fmt: skip
            return
        out.step("uploading")
        document = api.publish(
            app,
            envelope,
            packed.path,
            rollout=args.rollout,
            mandatory=args.mandatory,
            progress=lambda done: out.progress("upload", done, packed.info.length),
        )
        if expo is not None:
            document["expo"] = attach(api, int(document["id"]), manifest, mid, expo, out.step)
    out.result(document, _summary(document))


# --- Expo Updates --------------------------------------------------------------


def _expo_options(args: argparse.Namespace) -> ExpoOptions | None:
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


def _attach_expo(
    ctx: Context, api: Api, args: argparse.Namespace, document: dict[str, Any], envelope: bytes
) -> None:
    """Serve a just-published release to expo-updates too, when asked to."""
    options = _expo_options(args)
    if options is None:
        return
    payload = decode_release_envelope(envelope).payload
    document["expo"] = attach(
        api,
        int(document["id"]),
        decode_manifest(payload),
        manifest_id(payload),
        options,
        ctx.output.step,
    )


def expo_attach(ctx: Context, args: argparse.Namespace) -> None:
    """Serve an already published release to expo-updates (optionally signed)."""
    options = _expo_options(args)
    if options is None:
        raise UsageError("--runtime-version is required", hint="the app's runtimeVersion")
    with ctx.api() as api:
        shown = api.release(args.release_id)
        try:
            payload = decode_release_envelope(base64.b64decode(shown["manifest"])).payload
            manifest = decode_manifest(payload)
        except (HotPatchError, KeyError, ValueError) as exc:
            raise UsageError(
                f"release {args.release_id} has an unreadable manifest: {exc}"
            ) from None
        if manifest_id(payload) != shown.get("manifestId"):
            raise ServerError(f"release {args.release_id}'s manifest does not match its id")
        document = attach(
            api, args.release_id, manifest, manifest_id(payload), options, ctx.output.step
        )
    signed = f", signed with keyid {document['keyId']!r}" if document["signed"] else ", unsigned"
    ctx.output.result(
        document,
        f"release {args.release_id} is served to expo-updates as update {document['updateId']} "
        f"(runtime {document['runtimeVersion']}{signed})",
    )


def expo_rollback_to_embedded(ctx: Context, args: argparse.Namespace) -> None:
    """Send one Expo channel's runtime version back to the bundle embedded in the binary."""
    app = ctx.app()
    options = _expo_options(args)
    if options is None:
        raise UsageError("--runtime-version is required", hint="the app's runtimeVersion")
    when = commit_time(_now())
    body: dict[str, Any] = {
        "platform": args.platform,
        "channel": args.channel,
        "runtimeVersion": options.runtime_version,
        "commitTime": when,
    }
    if options.signing_key is not None:
        body |= sign(options, roll_back_directive(when))
    with ctx.api() as api:
        document = api.expo_roll_back(app, body)
    signed = f", signed with keyid {document['keyId']!r}" if document["signed"] else ", unsigned"
    ctx.output.result(
        document,
        f"{app} {args.platform}/{args.channel}, runtime {options.runtime_version}: devices go back "
        f"to their embedded bundle (committed {when}{signed}); publish a new update to move "
        "them forward again",
    )


# --- rollback, promote, rollout, list ----------------------------------------


def rollback(ctx: Context, args: argparse.Namespace) -> None:
    """Re-activate a version's content under a new signed manifest (the next sequence)."""
    app = ctx.app()
    key = ctx.signing_key(Path(args.key) if args.key else None)
    with ctx.api() as api:
        epoch = _check_key(ctx, api, app, key, args.platform, args.channel)
        source = _one_release(api, app, args.platform, args.channel, args.version)
        old = _source_manifest(api, source)
        sequence, created = _next_position(api, app, args.platform, args.channel, epoch)
        manifest = attrs.evolve(
            old,
            epoch=epoch,
            sequence=sequence,
            created_at=created,
            rollback_of=source["manifestId"],
            expires_at=_expiry(created, args),
            mandatory=old.mandatory if args.mandatory is None else args.mandatory,
        )
        ctx.output.step(f"rolling {app} {args.platform}/{args.channel} back to {args.version} "
                        f"as sequence {manifest.sequence}")  # fmt: skip
        envelope = sign_release(manifest, [key])
        document = api.rollback(int(source["id"]), envelope, args.rollout)
        _attach_expo(ctx, api, args, document, envelope)
    ctx.output.result(document, _summary(document))


def promote(ctx: Context, args: argparse.Namespace) -> None:
    """Publish a version's content from one channel on another (a new signed manifest)."""
    app = ctx.app()
    if args.source == args.target:
        raise UsageError("--from and --to name the same channel")
    key = ctx.signing_key(Path(args.key) if args.key else None)
    with ctx.api() as api:
        epoch = _check_key(ctx, api, app, key, args.platform, args.target)
        source = _one_release(api, app, args.platform, args.source, args.version)
        if api.releases(app, platform=args.platform, channel=args.target, version=args.version):
            raise ConflictError(f"{args.version} is already on {args.target}")
        old = _source_manifest(api, source)
        sequence, created = _next_position(api, app, args.platform, args.target, epoch)
        try:
            manifest = attrs.evolve(
                old,
                channel=args.target,
                epoch=epoch,
                sequence=sequence,
                created_at=created,
                rollback_of=None,
                expires_at=_expiry(created, args),
            )
        except (HotPatchError, ValueError) as exc:
            raise UsageError(f"invalid --to channel: {exc}") from None
        ctx.output.step(f"promoting {args.version} from {args.source} to {args.target}")
        envelope = sign_release(manifest, [key])
        document = api.promote(int(source["id"]), envelope, args.rollout)
        _attach_expo(ctx, api, args, document, envelope)
    ctx.output.result(document, _summary(document))


def rollout(ctx: Context, args: argparse.Namespace) -> None:
    """Change a release's rollout percentage, or pause / resume it (advisory, unsigned)."""
    app = ctx.app()
    if args.percent is not None and not 0 <= args.percent <= 100:
        raise UsageError("--percent is between 0 and 100")
    paused = True if args.pause else False if args.resume else None
    with ctx.api() as api:
        source = _one_release(api, app, args.platform, args.channel, args.version)
        document = api.change_rollout(int(source["id"]), percent=args.percent, paused=paused)
    ctx.output.result(document, _summary(document))


def _signed_files(
    api: Api,
    release: dict[str, Any],
    manifest: ReleaseManifest,
    work: Path,
    only: set[str] | None = None,
) -> dict[str, bytes]:
    """Download a release's archive and return its files (or ``only`` these), checked.

    The strict extractor checks every file against ``manifest``'s hashes and
    sizes; a mismatch raises a :class:`HotPatchError`.
    """
    archive = work / f"{release['manifestId']}.zip"
    api.download(str(release["downloadUrl"]), archive, manifest.archive.length)
    sink = MemorySink()
    with archive.open("rb") as handle:
        extract_archive(handle, manifest.files, sink, only=only)
    return sink.files


def _release_side(api: Api, release: dict[str, Any], work: Path) -> PatchSide:
    """Download a release's archive and read its files, checked against its signed manifest."""
    manifest = _source_manifest(api, release)
    files = _signed_files(api, release, manifest, work)
    return PatchSide(release["manifestId"], manifest.files, lambda entry: files[entry.path])


def patch(ctx: Context, args: argparse.Namespace) -> None:
    """Make the patch between two releases locally and upload it (the server checks it)."""
    app = ctx.app()
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        source = _one_release(api, app, args.platform, args.channel, args.source)
        target = _one_release(api, app, args.platform, args.channel, args.target)
        ctx.output.step(f"downloading {args.source} and {args.target}")
        base_side = _release_side(api, source, Path(tmp))
        target_side = _release_side(api, target, Path(tmp))
        ctx.output.step(f"diffing {len(target_side.files)} files")
        data, stats = make_patch(base_side, target_side)
        ctx.output.step(f"patch: {len(data):,} bytes ({stats.ops}); uploading")
        document = api.upload_patch(int(target["id"]), source["manifestId"], data)
    saved = 1 - document["size"] / document["archiveSize"]
    ctx.output.result(
        document,
        f"patch {args.source} -> {args.target}: {document['size']:,} bytes instead of "
        f"{document['archiveSize']:,} ({saved * 100:.1f} % saved); devices on {args.source} "
        "are offered it from now on",
    )


def embedded_register(ctx: Context, args: argparse.Namespace) -> None:
    """Register the bundle shipped in a native version, so first updates can be patches."""
    app = ctx.app()
    try:
        Version.parse_native(args.native_version)
    except HotPatchError as exc:
        raise UsageError(f"invalid --native-version: {exc}") from None
    files = collect_files(Path(args.bundle_dir))
    with ctx.api() as api, tempfile.TemporaryDirectory(prefix="hotpatch-") as tmp:
        packed = pack_directory(files, Path(tmp) / "embedded.zip")
        body = {
            "platform": args.platform,
            "nativeVersion": args.native_version,
            "archive": base64.b64encode(packed.path.read_bytes()).decode(),
            "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in packed.files],
        }
        ctx.output.step(f"registering {len(files)} files as {app} {args.platform} "
                        f"{args.native_version}'s embedded bundle")  # fmt: skip
        document = api.register_embedded(app, body)
    ctx.output.result(
        document,
        f"embedded bundle of {args.platform} {args.native_version} registered (id "
        f"{document['baseId'][:12]}…); devices on it can now be patched to new releases",
    )


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
            r["id"], r["platform"], r["channel"], r["version"], f"{r['epoch']}.{r['sequence']}",
            f"{r['rolloutPercent']:g}%",
            "archived" if not r["active"] else "paused" if r["paused"] else "active",
            "rollback" if r.get("rollbackOf") else "", f"{r['size'] / 1e6:.2f} MB",
            str(r["createdAt"])[:19],
        ]
        for r in rows
    ]  # fmt: skip
    headers = [
        "id",
        "platform",
        "channel",
        "version",
        "seq",
        "rollout",
        "state",
        "kind",
        "size",
        "created",
    ]
    text = table(headers, lines) if rows else f"no releases of {app} match"
    ctx.output.result(rows, text)


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
