"""Signing keys and trust roots: ``hotpatch keys ...`` and ``hotpatch trust-root ...``."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import attrs

from hotpatch_cli.codepush import codepush_key_pair
from hotpatch_cli.context import Context, now
from hotpatch_cli.errors import ConflictError, UsageError
from hotpatch_cli.keys import (
    build_trust_root,
    load_public_key,
    load_signing_key,
    publisher_snippet,
    write_private,
)
from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey
from hotpatch_core.trust import (
    PublisherKey,
    Scope,
    TimestampRole,
    load_trust_root,
    rotate_trust_root,
    sign_trust_root,
)

__all__ = [
    "RootArgs",
    "keys_export_public",
    "keys_generate",
    "keys_generate_codepush",
    "keys_show",
    "trust_root_create",
    "trust_root_rotate",
]


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


def _publishers(args: argparse.Namespace, ctx: Context) -> list[PublisherKey]:
    scope = _scope(args, ctx)
    expires = now() + timedelta(days=args.publisher_days) if args.publisher_days else None
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


def _positive(value: int | None, flag: str) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} is a whole number of at least 1")
    return value


def _free(out: str, force: bool) -> Path:  # noqa: FBT001 - the --force flag as given
    path = Path(out)
    if path.exists() and not force:
        raise UsageError(f"{path} exists already", hint="pass --force to replace it")
    return path


@attrs.frozen
class RootArgs:
    """What ``hotpatch trust-root create`` or ``rotate`` signs, checked and loaded.

    ``None`` (and empty) values mean "as the current root has it" on a rotation.
    """

    root_keys: tuple[SigningKey, ...]
    threshold: int | None
    publishers: tuple[PublisherKey, ...]
    lifetime: timedelta | None
    timestamp: TimestampRole | None
    out: Path

    @classmethod
    def parse(cls, ctx: Context, args: argparse.Namespace) -> RootArgs:
        """Check the numbers and the output file, then load the keys the flags name."""
        threshold = _positive(args.threshold, "--threshold")
        days = _positive(args.days, "--days")
        _positive(args.publisher_days, "--publisher-days")
        out = _free(args.out, args.force)
        return cls(
            root_keys=tuple(_root_keys(args.root_key)),
            threshold=threshold,
            publishers=tuple(_publishers(args, ctx)),
            lifetime=None if days is None else timedelta(days=days),
            timestamp=_timestamp(args.timestamp_key),
            out=out,
        )


def trust_root_create(ctx: Context, args: argparse.Namespace) -> None:
    """Create and sign an app's first trust root."""
    epoch = _positive(args.epoch, "--epoch")
    asked = RootArgs.parse(ctx, args)
    root, data = build_trust_root(
        root_keys=list(asked.root_keys),
        threshold=asked.threshold or 1,
        publishers=list(asked.publishers),
        version=1,
        epoch=epoch or 1,
        expires_at=now() + asked.lifetime if asked.lifetime else None,
        timestamp=asked.timestamp,
    )
    asked.out.write_bytes(data)
    ctx.output.result(
        {"path": str(asked.out), "version": root.version, "epoch": root.epoch,
         "rootKeys": [k.key_id for k in root.root_keys],
         "publishers": [p.key_id for p in root.publishers],
         "timestampKeys": [k.key_id for k in root.timestamp.keys] if root.timestamp else []},
        f"wrote trust root v{root.version} (epoch {root.epoch}) to {asked.out}: "
        f"{root.root_threshold} of {len(root.root_keys)} root keys, "
        f"{len(root.publishers)} publisher key(s)"
        + (", channel heads required" if root.timestamp else "")
        + ". Embed this file in the app, and create the "
        f"app on the server with it (hotpatch-server create-app ID --trust-root {asked.out}).",
    )  # fmt: skip


def trust_root_rotate(ctx: Context, args: argparse.Namespace) -> None:
    """Sign trust root N+1 with the current root keys and the new ones; optionally install it."""
    current_path = Path(args.current)
    try:
        current = load_trust_root(current_path.read_bytes())
    except (OSError, HotPatchError) as exc:
        raise UsageError(f"cannot use {current_path}: {exc}") from None
    asked = RootArgs.parse(ctx, args)
    old_keys = _root_keys(args.old_root_key)
    new_keys = list(asked.root_keys) or old_keys
    root, _ = build_trust_root(
        root_keys=new_keys,
        threshold=asked.threshold or current.root_threshold,
        publishers=list(asked.publishers) or list(current.publishers),
        version=current.version + 1,
        epoch=current.epoch + 1 if args.bump_epoch else current.epoch,
        expires_at=now() + asked.lifetime if asked.lifetime else current.expires_at,
        timestamp=None if args.no_timestamp_key else asked.timestamp or current.timestamp,
        release_thresholds=current.release_thresholds,
    )
    signers = {k.public_key.key_id: k for k in [*old_keys, *new_keys]}
    data = sign_trust_root(root, list(signers.values()))
    try:
        rotate_trust_root(current, data)
    except HotPatchError as exc:
        raise UsageError(f"the new root would not be accepted: {exc}") from None
    asked.out.write_bytes(data)
    document: dict[str, object] = {
        "path": str(asked.out),
        "version": root.version,
        "epoch": root.epoch,
    }
    if args.upload:
        api_app = ctx.app()
        with ctx.api() as api:
            api.install_trust_root(api_app, data)
        document["installedOn"] = api_app
    ctx.output.result(
        document,
        f"wrote trust root v{root.version} (epoch {root.epoch}) to {asked.out}"
        + (f"; installed on {document['installedOn']}" if args.upload else ""),
    )
