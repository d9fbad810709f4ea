"""What several commands do the same way: find a release, check the key, place the next one."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from hotpatch_cli.api import Api
from hotpatch_cli.context import Context, now
from hotpatch_cli.errors import AuthError, NotFoundError, ServerError, UsageError
from hotpatch_core.archive import MemorySink, extract_archive
from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import ReleaseManifest, decode_manifest, manifest_id
from hotpatch_core.publishing import ReleaseView
from hotpatch_core.release import decode_release_envelope

__all__ = [
    "check_key",
    "expiry",
    "next_position",
    "one_release",
    "rollout_percent",
    "signed_files",
    "signed_manifest",
    "summary",
]


def rollout_percent(value: float) -> float:
    """Return ``--rollout`` if it is a percentage, else refuse it before anything is asked."""
    if not 0 <= value <= 100:
        raise UsageError("--rollout is a percentage between 0 and 100")
    return value


def expiry(created: datetime, lifetime: timedelta | None) -> datetime | None:
    """When a release signed at ``created`` expires (``--expires-in``; None: never)."""
    return None if lifetime is None else created + lifetime


def one_release(api: Api, app: str, platform: str, channel: str, version: str) -> ReleaseView:
    """Return the release of ``version`` on a channel (the original, not a rollback to it)."""
    rows = api.releases(app, platform=platform, channel=channel, version=version)
    if not rows:
        raise NotFoundError(f"no release {version} of {app} on {platform}/{channel}")
    originals = [r for r in rows if r.rollback_of is None]
    return (originals or rows)[0]


def next_position(
    api: Api, app: str, platform: str, channel: str, epoch: int
) -> tuple[int, datetime]:
    """Return the next sequence on the channel, and a signing time after its newest release's.

    Times are whole seconds, and Expo devices take only an update committed
    strictly later than the one they run: a rollback signed in the same
    second as the release it replaces would never reach them.
    """
    newest = api.releases(app, platform=platform, channel=channel, limit=1)
    created = now()
    if newest:
        created = max(created, newest[0].created_at.replace(microsecond=0) + timedelta(seconds=1))
    if not newest or newest[0].epoch != epoch:
        return 1, created
    return newest[0].sequence + 1, created


def check_key(  # noqa: PLR0913, PLR0917 - who signs what, where
    ctx: Context, api: Api, app: str, key: SigningKey, platform: str, channel: str
) -> int:
    """Refuse a key the app's trust root does not certify here; return the root's epoch."""
    document = api.app(app)
    key_id = key.public_key.key_id
    for publisher in document.publishers:
        if publisher.key_id != key_id:
            continue
        if not publisher.scope.covers(app, platform, channel):
            raise AuthError(
                f"signing key {key_id[:12]}… may not sign for {app}/{platform}/{channel}",
                hint="use a key whose trust-root scope covers this channel",
            )
        ctx.output.detail(f"signing key {key_id[:12]}… is publisher {publisher.name!r}")
        return document.epoch
    raise AuthError(
        f"signing key {key_id[:12]}… is not a publisher key of {app}'s trust root",
        hint="use the right --key, or add it to the trust root and rotate",
    )


def signed_manifest(api: Api, release: ReleaseView) -> ReleaseManifest:
    """Return a release's signed manifest, as the server keeps it, checked against its id."""
    shown = api.release(release.id)
    try:
        if shown.manifest is None:
            raise UsageError(f"the server sent release {release.id} without its manifest")
        payload = decode_release_envelope(shown.manifest).payload
        manifest = decode_manifest(payload)
    except HotPatchError as exc:
        raise UsageError(f"release {release.id} has an unreadable manifest: {exc}") from None
    if manifest_id(payload) != shown.manifest_id:
        raise ServerError(f"release {release.id}'s manifest does not match its id")
    return manifest


def signed_files(
    api: Api,
    release: ReleaseView,
    manifest: ReleaseManifest,
    work: Path,
    only: set[str] | None = None,
) -> dict[str, bytes]:
    """Download a release's archive and return its files (or ``only`` these), checked.

    The strict extractor checks every file against ``manifest``'s hashes and
    sizes: nothing the server changed after the release was signed is ever
    read (a mismatch is a :class:`ServerError`).
    """
    archive = work / f"{release.manifest_id}.zip"
    api.download(release.download_url, archive, manifest.archive.length)
    sink = MemorySink()
    try:
        with archive.open("rb") as handle:
            extract_archive(handle, manifest.files, sink, only=only)
    except HotPatchError as exc:
        raise ServerError(
            f"{release.version}'s archive on the server does not match its signed "
            f"manifest ({type(exc).__name__}: {exc})",
            hint="the server or its storage changed a published archive: investigate "
            "before publishing anything made from it",
        ) from None
    return sink.files


def summary(release: ReleaseView) -> str:
    """Say in two lines what a release is and where it stands."""
    return (
        f"release {release.id}: {release.app_id} {release.platform}/{release.channel} "
        f"{release.version} (epoch {release.epoch}, sequence {release.sequence}), "
        f"rollout {release.rollout_percent:g} %"
        + (", paused" if release.paused else "")
        + f"\nmanifest {release.manifest_id}\ndownload {release.download_url}"
    )
