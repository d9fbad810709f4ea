"""The Expo Updates (protocol v1) manifest of a HotPatch release, computed exactly.

``expo-updates`` asks its server for a *manifest*: a JSON document naming an
update (``id``, ``createdAt``, ``runtimeVersion``) and every file of it by
URL and base64url sha256 (the launch asset, which is the JS bundle, and the
assets). With code signing on, the device also wants an RSA signature of
the manifest's exact bytes (the ``expo-signature`` header).

HotPatch keeps its rule that the server holds no publisher key
(docs/adr/0005-expo-manifests-are-fixed-at-publish.md): the manifest is a
pure function of the release's signed manifest, the runtime version, the
server's public URL and the app's public Expo config, so the publisher's CLI
and the server compute the same bytes, the CLI signs them, and the server
serves exactly those bytes. Nothing in them changes per request: the update
id is derived from the manifest id, the commit time is the signed
``createdAt``, and every asset URL is stable (content-addressed).

A release served to Expo devices holds the entry file
(:attr:`Platform.entry_file`, the launch asset) and assets named
``assets/<key><.ext>``, where the key is what the bundler gave the asset
(``npx expo export`` names them by their md5) and the extension is the
asset's own. ``hotpatch release --expo-export`` packs an export that way.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import attrs

from hotpatch_core import strictjson
from hotpatch_core.archive import FileEntry
from hotpatch_core.codepush import SIGNATURE_FILE
from hotpatch_core.errors import SchemaError
from hotpatch_core.manifest import ReleaseManifest

__all__ = [
    "ASSET_DIRECTORY",
    "MAX_EXPO_CLIENT_BYTES",
    "RUNTIME_VERSION",
    "ExpoAsset",
    "asset_url",
    "commit_time",
    "content_type",
    "expo_assets",
    "expo_manifest",
    "hash_b64url",
    "multipart",
    "parse_sfv_dictionary",
    "parse_sfv_strings",
    "roll_back_directive",
    "signature_header",
    "update_id",
]

#: Where a release keeps its Expo assets.
ASSET_DIRECTORY: Final = "assets/"
#: Runtime versions: what the ``appVersion``, ``nativeVersion`` and ``fingerprint``
#: policies produce (``1.4.0``, ``1.4.0(12)``, a hex fingerprint), bounded as the column is.
RUNTIME_VERSION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+:()-]{0,63}")
#: The app's public Expo config (``npx expo config --type public --json``) is at most this big.
MAX_EXPO_CLIENT_BYTES: Final = 256 * 1024
_ASSET: Final = re.compile(r"assets/([0-9A-Za-z_-]{1,128})(\.[0-9A-Za-z]{1,16})")
_LAUNCH_TYPE: Final = "application/javascript"
#: Content types by extension; anything else is ``application/octet-stream``.
_TYPES: Final = {
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".psd": "image/vnd.adobe.photoshop",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".html": "text/html",
    ".txt": "text/plain",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".pdf": "application/pdf",
    ".db": "application/octet-stream",
}


@attrs.frozen
class ExpoAsset:
    """One file of a release as an Expo manifest lists it."""

    path: str
    key: str
    #: With the leading dot; None for the launch asset (devices name it ``.bundle``).
    file_extension: str | None
    content_type: str
    sha256: str


def update_id(manifest_id: str) -> str:
    """Return the Expo update id of the release whose manifest id is ``manifest_id``.

    A UUID (RFC 9562 version 8, "custom") made of the id's first 122 bits:
    one release is one update forever, and a rollback (a new manifest) is a
    new update.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", manifest_id):
        raise SchemaError("a manifest id is 64 lowercase hex digits", "manifestId")
    digits = list(manifest_id[:32])
    digits[12] = "8"
    digits[16] = "0123456789abcdef"[(int(digits[16], 16) & 0x3) | 0x8]
    text = "".join(digits)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def commit_time(at: datetime) -> str:
    """Format ``at`` as JavaScript's ``toISOString()`` does, the only form Android parses."""
    if at.tzinfo is None:
        raise SchemaError("a commit time needs a time zone", "createdAt")
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def hash_b64url(sha256_hex: str) -> str:
    """Re-encode a hex sha256 as the unpadded base64url form Expo devices compare."""
    return base64.urlsafe_b64encode(bytes.fromhex(sha256_hex)).rstrip(b"=").decode("ascii")


def content_type(file_extension: str) -> str:
    """Return the content type served for an asset with this extension."""
    return _TYPES.get(file_extension.lower(), "application/octet-stream")


def asset_url(public_url: str, sha256: str) -> str:
    """Return the stable, absolute URL the server serves an Expo asset at."""
    return f"{public_url.rstrip('/')}/expo/assets/{sha256}"


def expo_assets(manifest: ReleaseManifest) -> tuple[ExpoAsset, tuple[ExpoAsset, ...]]:
    """Return a release's launch asset and assets; :class:`SchemaError` if it has others.

    Every file must be the entry file or ``assets/<key><.ext>`` (or the
    CodePush signature, which is not served), and keys must be unique: a
    device stores an asset as ``<key><.ext>`` and finds it by its key.
    """
    entry = manifest.platform.entry_file
    launch: FileEntry | None = None
    assets: list[ExpoAsset] = []
    keys: set[str] = set()
    for file in manifest.files:
        if file.path == entry:
            launch = file
            continue
        if file.path == f"CodePush/{SIGNATURE_FILE}":
            continue  # a CodePush device's signature of the same release: not an asset
        match = _ASSET.fullmatch(file.path)
        if match is None:
            raise SchemaError(
                f"{file.path[:80]!r} is neither {entry} nor assets/<key>.<extension>; "
                "only an `npx expo export` release (hotpatch release --expo-export) "
                "can be served to expo-updates",
                "files",
            )
        key, extension = match.groups()
        if key in keys:
            raise SchemaError(f"two assets have the key {key!r}", "files")
        keys.add(key)
        assets.append(ExpoAsset(file.path, key, extension, content_type(extension), file.sha256))
    if launch is None:
        raise SchemaError(f"the release has no {entry} to launch", "files")
    return ExpoAsset(launch.path, launch.sha256, None, _LAUNCH_TYPE, launch.sha256), tuple(assets)


def roll_back_directive(commit_time_text: str) -> bytes:
    """Return the exact bytes of a ``rollBackToEmbedded`` directive committed at that time.

    ``commit_time_text`` is in :func:`commit_time` form; devices run their
    embedded bundle unless an update committed after it is served.
    """
    try:
        parsed = datetime.strptime(commit_time_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        parsed = None
    if parsed is None or commit_time(parsed) != commit_time_text:
        raise SchemaError(
            f"{commit_time_text[:40]!r} is not a time like 2026-01-31T12:00:00.000Z", "commitTime"
        )
    return strictjson.canonical(
        {"type": "rollBackToEmbedded", "parameters": {"commitTime": commit_time_text}}
    )


def _listed(asset: ExpoAsset, public_url: str) -> dict[str, strictjson.JSONValue]:
    listed: dict[str, strictjson.JSONValue] = {
        "hash": hash_b64url(asset.sha256),
        "key": asset.key,
        "contentType": asset.content_type,
        "url": asset_url(public_url, asset.sha256),
    }
    if asset.file_extension is not None:
        listed["fileExtension"] = asset.file_extension
    return listed


def expo_manifest(
    manifest: ReleaseManifest,
    manifest_id: str,
    *,
    runtime_version: str,
    public_url: str,
    expo_client: Mapping[str, strictjson.JSONValue] | None = None,
) -> bytes:
    """Return the exact bytes of the Expo manifest serving this release.

    ``public_url`` is the server's public base URL (``http(s)://``, asset URLs
    hang below it); ``expo_client`` the app's public Expo config, served as
    ``extra.expoClient`` (``Constants.expoConfig`` in the app). The same
    arguments give the same bytes, on the publisher's machine and on the
    server.
    """
    if not RUNTIME_VERSION.fullmatch(runtime_version):
        raise SchemaError(
            f"runtime version {runtime_version[:80]!r} is not 1-64 letters, digits or ._+:()-",
            "runtimeVersion",
        )
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public_url):
        raise SchemaError(f"{public_url[:80]!r} is not an absolute http(s) URL", "publicUrl")
    launch, assets = expo_assets(manifest)
    extra: dict[str, strictjson.JSONValue] = {}
    if expo_client is not None:
        extra["expoClient"] = dict(expo_client)
        if len(strictjson.canonical(extra)) > MAX_EXPO_CLIENT_BYTES:
            raise SchemaError(
                f"the Expo config is over {MAX_EXPO_CLIENT_BYTES} bytes", "expoClient"
            )
    document: dict[str, strictjson.JSONValue] = {
        "id": update_id(manifest_id),
        "createdAt": commit_time(manifest.created_at),
        "runtimeVersion": runtime_version,
        "launchAsset": _listed(launch, public_url),
        "assets": [_listed(a, public_url) for a in assets],
        "metadata": {},
        "extra": extra,
    }
    return strictjson.canonical(document)


# --- the answer's framing: multipart/mixed and structured header fields -------


def multipart(parts: list[tuple[str, bytes, Mapping[str, str]]]) -> tuple[str, bytes]:
    """Encode ``(name, body, extra part headers)`` parts as ``multipart/mixed`` (RFC 2046).

    Returns the content type (with its boundary) and the body: CRLF line
    ends, ``content-disposition: inline; name="<name>"`` and
    ``content-type: application/json`` on every part, and a close
    delimiter, as expo-updates' readers require. The boundary is derived
    from the parts, and never occurs in them.
    """
    digest = hashlib.sha256()
    for name, body, _headers in parts:
        digest.update(name.encode() + b"\0" + body)
    seed = digest.hexdigest()
    boundary = f"hotpatch-{seed[:40]}"
    while any(boundary.encode() in body for _name, body, _headers in parts):
        seed = hashlib.sha256(seed.encode()).hexdigest()
        boundary = f"hotpatch-{seed[:40]}"
    out = bytearray()
    for name, body, headers in parts:
        out += f"--{boundary}\r\n".encode()
        out += b"content-type: application/json; charset=utf-8\r\n"
        out += f'content-disposition: inline; name="{name}"\r\n'.encode()
        for header, value in headers.items():
            out += f"{header}: {value}\r\n".encode()
        out += b"\r\n" + body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/mixed; boundary={boundary}", bytes(out)


def signature_header(signature_b64: str, key_id: str) -> str:
    """Return the ``expo-signature`` value for a base64 RSA-SHA256 signature."""
    return f'sig="{signature_b64}", keyid="{key_id}", alg="rsa-v1_5-sha256"'


#: Header values longer than this are refused before parsing.
MAX_SFV_LENGTH: Final = 4096
_SFV_STRING: Final = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SFV_KEY: Final = re.compile(r"[a-z*][a-z0-9_.*-]{0,63}")
_SFV_TOKEN: Final = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~:/0-9A-Za-z-]{0,255}")
_SFV_INTEGER: Final = re.compile(r"-?[0-9]{1,15}")
_SFV_SEPARATOR: Final = re.compile(r"[ \t]*,[ \t]*")


def _sfv_item(text: str, at: int) -> tuple[str | bool | int, int]:
    """Parse one bare item at ``at``; return it and the index after it (RFC 8941 §4.2.3)."""
    if match := _SFV_STRING.match(text, at):
        return re.sub(r"\\(.)", r"\1", match.group(1)), match.end()
    if text.startswith("?1", at) or text.startswith("?0", at):
        return text[at + 1] == "1", at + 2
    if match := _SFV_INTEGER.match(text, at):
        return int(match.group()), match.end()
    if match := _SFV_TOKEN.match(text, at):
        return match.group(), match.end()
    raise SchemaError(f"no structured-field item at character {at}", "header")


def _sfv_members(text: str) -> list[str]:
    if len(text) > MAX_SFV_LENGTH:
        raise SchemaError(f"longer than {MAX_SFV_LENGTH} characters", "header")
    return [text.strip(" \t")] if text.strip(" \t") else []


def parse_sfv_strings(text: str) -> list[str]:
    """Parse a structured-field list of strings (``"a", "b"``); :class:`SchemaError` otherwise."""
    items: list[str] = []
    for body in _sfv_members(text):
        at = 0
        while True:
            item, at = _sfv_item(body, at)
            if not isinstance(item, str) or body[at - 1] != '"':
                raise SchemaError("the list must hold strings only", "header")
            items.append(item)
            if at == len(body):
                break
            separator = _SFV_SEPARATOR.match(body, at)
            if separator is None or separator.end() == len(body):
                raise SchemaError(f"expected ', ' at character {at}", "header")
            at = separator.end()
    return items


def parse_sfv_dictionary(text: str) -> dict[str, str | bool | int]:
    """Parse a structured-field dictionary (``sig, keyid="main"``; parameters are refused)."""
    members: dict[str, str | bool | int] = {}
    for body in _sfv_members(text):
        at = 0
        while True:
            key = _SFV_KEY.match(body, at)
            if key is None:
                raise SchemaError(f"expected a key at character {at}", "header")
            at = key.end()
            value: str | bool | int = True
            if at < len(body) and body[at] == "=":
                value, at = _sfv_item(body, at + 1)
            members[key.group()] = value
            if at == len(body):
                break
            separator = _SFV_SEPARATOR.match(body, at)
            if separator is None or separator.end() == len(body):
                raise SchemaError(f"expected ', ' at character {at}", "header")
            at = separator.end()
    return members
