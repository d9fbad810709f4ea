"""HotPatch core: the sans-I/O heart of HotPatch.

Formats, trust and decisions, with no sockets, files or clocks: bytes,
events and ``now`` come in as arguments, so the same code serves the server,
the CLI, the device agent and the golden vectors native SDKs are checked
against. Modules:

- :mod:`~hotpatch_core.errors` — the exception tree, one type per attack;
- :mod:`~hotpatch_core.versions` — semantic versions and binary ranges;
- :mod:`~hotpatch_core.keys` — Ed25519 keys, key ids, PEM;
- :mod:`~hotpatch_core.envelope` — DSSE-style envelopes over exact bytes;
- :mod:`~hotpatch_core.trust` — the trust root and its rotation;
- :mod:`~hotpatch_core.manifest` — the signed release manifest;
- :mod:`~hotpatch_core.release` — the one verification path;
- :mod:`~hotpatch_core.head` — the signed channel head (freshness);
- :mod:`~hotpatch_core.archive` — the deterministic zip and strict extractor;
- :mod:`~hotpatch_core.cohort` — stable, monotone rollout buckets;
- :mod:`~hotpatch_core.machine` — the device state machine;
- :mod:`~hotpatch_core.wire` — the camelCase converter for every document.
"""

from hotpatch_core.archive import (
    ArchiveInput,
    ArchiveLimits,
    FileEntry,
    extract_archive,
    write_archive,
)
from hotpatch_core.cohort import bucket, in_rollout
from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import PublicKey, SigningKey
from hotpatch_core.manifest import ArchiveInfo, Platform, ReleaseManifest
from hotpatch_core.release import (
    DeviceIdentity,
    HighWaterMark,
    VerifiedRelease,
    sign_release,
    verify_publication,
    verify_release,
)
from hotpatch_core.trust import (
    PublisherKey,
    Scope,
    TimestampRole,
    TrustRoot,
    load_trust_root,
    sign_trust_root,
)
from hotpatch_core.versions import BinaryRange, Version

__all__ = [
    "ArchiveInfo",
    "ArchiveInput",
    "ArchiveLimits",
    "BinaryRange",
    "DeviceIdentity",
    "FileEntry",
    "HighWaterMark",
    "HotPatchError",
    "Platform",
    "PublicKey",
    "PublisherKey",
    "ReleaseManifest",
    "Scope",
    "SigningKey",
    "TimestampRole",
    "TrustRoot",
    "VerifiedRelease",
    "Version",
    "bucket",
    "extract_archive",
    "in_rollout",
    "load_trust_root",
    "sign_release",
    "sign_trust_root",
    "verify_publication",
    "verify_release",
    "write_archive",
]
