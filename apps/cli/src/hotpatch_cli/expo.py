"""Publishing for apps with ``expo-updates``: pack an ``npx expo export``, attach and sign.

``npx expo export`` writes ``dist/metadata.json``, the bundles
(``_expo/static/js/<platform>/<name>.hbc`` or ``.js``) and the assets
(``assets/<md5>``, their extensions in the metadata). A HotPatch release
holds the platform's bundle as its entry file (``index.android.bundle`` /
``main.jsbundle``) and each asset as ``assets/<md5>.<ext>``: the key the
bundle looks the asset up by, and the extension a device stores it with.

Attaching makes the release reachable by expo-updates: the server computes
the Expo manifest (:func:`hotpatch_core.expo.expo_manifest`), this module
computes the same bytes from the signed release to check the server added
nothing, signs them with the app's RSA key when the app checks code
signatures, and sends the signature. The key never leaves this machine.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hotpatch_cli.api import Api
from hotpatch_cli.errors import ServerError, UsageError
from hotpatch_core.archive import check_path
from hotpatch_core.errors import HotPatchError
from hotpatch_core.expo import expo_manifest
from hotpatch_core.manifest import Platform, ReleaseManifest
from hotpatch_core.publishing import ExpoAttachment, ExpoRollBack, ExpoUpdateView

__all__ = ["ExpoOptions", "attach", "export_files", "sign"]

#: A request that carries an Expo code signature.
Signable = TypeVar("Signable", ExpoAttachment, ExpoRollBack)

_EXT: Final = re.compile(r"[0-9A-Za-z]{1,16}")
_ASSET_PATH: Final = re.compile(r"assets/[0-9A-Za-z_-]{1,128}")
_ASSET_URL: Final = re.compile(r"(https?://.+)/expo/assets/[0-9a-f]{64}")


def _metadata(export_dir: Path) -> dict[str, Any]:
    path = export_dir / "metadata.json"
    if not path.is_file():
        raise UsageError(
            f"{export_dir} has no metadata.json",
            hint="point --expo-export at the output of `npx expo export` (default dist/)",
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("fileMetadata"), dict):
        raise UsageError(f"{path} has no fileMetadata object; is it from `npx expo export`?")
    return document


def _inside(export_dir: Path, relative: object, what: str) -> Path:
    if not isinstance(relative, str):
        raise UsageError(f"metadata.json: {what} is not a path")
    try:
        check_path(relative)
    except HotPatchError as exc:
        raise UsageError(f"metadata.json: {what} {relative!r}: {exc}") from None
    path = export_dir / relative
    if path.is_symlink() or not path.is_file():
        raise UsageError(f"metadata.json names {relative}, which is not a file in {export_dir}")
    return path


def export_files(export_dir: Path, platform: Platform) -> dict[str, Path]:
    """Return the release's files (archive path → file) for ``platform`` of an Expo export."""
    metadata = _metadata(export_dir)
    entry = metadata["fileMetadata"].get(platform.value)
    if not isinstance(entry, dict):
        raise UsageError(
            f"the export has no {platform.value} build",
            hint=f"run `npx expo export --platform {platform.value}`",
        )
    files = {platform.entry_file: _inside(export_dir, entry.get("bundle"), "bundle")}
    assets = entry.get("assets", [])
    if not isinstance(assets, list):
        raise UsageError(f"metadata.json: {platform.value}.assets is not a list")
    for asset in assets:
        if not isinstance(asset, dict):
            raise UsageError(f"metadata.json: an asset of {platform.value} is not an object")
        relative, ext = asset.get("path"), asset.get("ext")
        if not isinstance(relative, str) or not _ASSET_PATH.fullmatch(relative):
            raise UsageError(f"metadata.json: asset path {relative!r} is not assets/<key>")
        if not isinstance(ext, str) or not _EXT.fullmatch(ext):
            raise UsageError(f"metadata.json: asset {relative} has no usable extension {ext!r}")
        source = _inside(export_dir, relative, "asset")
        name = f"{relative}.{ext}"
        if name in files and files[name] != source:
            raise UsageError(f"metadata.json lists {relative} twice with different files")
        files[name] = source
    return files


@attrs.frozen
class ExpoOptions:
    """What makes a release's Expo manifest, and how to sign it."""

    runtime_version: str
    #: The app's public Expo config (``npx expo config --type public --json``), if given.
    config: dict[str, object] | None = None
    #: PEM private key and certificate (``npx expo-updates codesigning:generate``) and key id.
    signing_key: Path | None = None
    certificate: Path | None = None
    key_id: str = "main"

    @classmethod
    def from_args(
        cls,
        runtime_version: str,
        config: str | None,
        key: str | None,
        cert: str | None,
        key_id: str,
    ) -> ExpoOptions:
        """Check the command-line options and read the config file."""
        if (key is None) != (cert is None):
            raise UsageError(
                "--expo-signing-key and --expo-certificate go together",
                hint="both come from `npx expo-updates codesigning:generate`",
            )
        document = None
        if config is not None:
            try:
                document = json.loads(Path(config).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UsageError(f"cannot read --expo-config {config}: {exc}") from None
            if not isinstance(document, dict):
                raise UsageError(f"--expo-config {config} is not a JSON object")
        return cls(
            runtime_version,
            document,
            Path(key) if key else None,
            Path(cert) if cert else None,
            key_id,
        )


def sign(options: ExpoOptions, body: bytes, document: Signable) -> Signable:
    """Sign ``body``, check the signature against the certificate as a device will.

    Return ``document`` (the request that sends ``body``'s source to the
    server) with its ``signature``, ``keyId`` and ``certificate`` set.
    """
    assert options.signing_key is not None  # noqa: S101 - only called with a key
    assert options.certificate is not None  # noqa: S101
    try:
        key = serialization.load_pem_private_key(options.signing_key.read_bytes(), password=None)
        certificate = options.certificate.read_text(encoding="ascii")
        public = x509.load_pem_x509_certificate(certificate.encode()).public_key()
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read the Expo signing key or certificate: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        raise UsageError("the Expo signing key and certificate must be RSA")
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    try:
        public.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise UsageError(
            "--expo-signing-key is not the key of --expo-certificate",
            hint="use the pair `npx expo-updates codesigning:generate` wrote",
        ) from None
    return attrs.evolve(
        document,
        signature=base64.b64encode(signature).decode(),
        key_id=options.key_id,
        certificate=certificate,
    )


def _public_url(served: bytes) -> str:
    """Return the public URL the server's asset URLs hang below."""
    try:
        launch_url = json.loads(served)["launchAsset"]["url"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"the server's Expo manifest is unreadable: {exc}") from None
    match = _ASSET_URL.fullmatch(launch_url) if isinstance(launch_url, str) else None
    if match is None:
        raise ServerError(f"the server's Expo manifest has an unexpected asset URL: {launch_url!r}")
    return match.group(1)


def attach(  # noqa: PLR0913, PLR0917 - the release, what to make of it, where to report
    api: Api,
    release_id: int,
    manifest: ReleaseManifest,
    manifest_id: str,
    options: ExpoOptions,
    step: Callable[[str], None],
) -> ExpoUpdateView:
    """Attach (and sign) the Expo manifest of a release whose signed manifest is ``manifest``."""
    attachment = ExpoAttachment(options.runtime_version, expo_client=options.config)
    served = api.expo_preview(release_id, attachment)
    # The server names its public URL in the asset URLs; everything else must be
    # what the signed release says, byte for byte, before anything is signed.
    public_url = _public_url(served)
    try:
        expected = expo_manifest(
            manifest,
            manifest_id,
            runtime_version=options.runtime_version,
            public_url=public_url,
            expo_client=options.config,
        )
    except HotPatchError as exc:
        raise UsageError(f"this release cannot be served to expo-updates: {exc}") from None
    if served != expected:
        raise ServerError(
            "the server's Expo manifest differs from the one this release makes; nothing signed",
            hint="the server and this CLI disagree: update both to the same version",
        )
    step(f"Expo manifest for runtime {options.runtime_version}: assets served from {public_url}")
    if options.signing_key is not None:
        attachment = sign(options, served, attachment)
        step(f"signed it with keyid {options.key_id!r}")
    return api.expo_attach(release_id, attachment)
