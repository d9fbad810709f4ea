"""Every failure HotPatch reports, as one exception tree.

Each attack in docs/security.md maps to exactly one type, so a test (or an
integrator) can tell *why* something was refused without parsing messages::

    HotPatchError
    ├── FormatError                  input is not a well-formed document
    │   ├── StrictJSONError          duplicate keys, NaN, floats, huge ints (A13)
    │   ├── SchemaError              wrong fields, types or values (carries .field)
    │   ├── MalformedEnvelopeError   truncated / not an envelope / bad base64 (A1)
    │   ├── UnsupportedFormatError   a format version this code does not know
    │   ├── VersionSyntaxError       not a semantic version or binary range
    │   └── KeyFormatError           not an Ed25519 key in the expected encoding
    ├── TooLargeError                a cap was exceeded (A2, A16)
    ├── VerificationError            the signatures do not establish trust
    │   ├── PayloadTypeError         envelope is for another document type (A1)
    │   ├── UnsignedError            no signature at all (A1)
    │   ├── UnknownKeyError          signed only by keys the root does not know (A1)
    │   ├── BadSignatureError        a known key, but the signature is wrong (A1, A13)
    │   ├── KeyScopeError            a known key, outside its scope (A1, A10)
    │   ├── ExpiredError             key, root or manifest past its expiry (A5, A10)
    │   ├── ThresholdError           too few distinct verified keys (A10, A14)
    │   └── RootRotationError        a new root that does not chain from the old one
    ├── IdentityMismatchError        valid release for another app / platform /
    │                                channel / binary (A11; carries .field)
    ├── EpochError                   manifest from another trust epoch (A4)
    ├── RollbackError                sequence lower than the high-water mark (A8)
    ├── EquivocationError            same sequence, different manifest (A8)
    ├── HashMismatchError            bytes differ from their signed hash / length (A1, A15)
    ├── FreshnessError               an answer contradicts the signed channel head (A5)
    │   ├── WithdrawnError           offers a release the head does not list
    │   └── WithheldError            hides a release the head lists for this device
    ├── ArchiveError                 the archive breaks the extractor's rules
    │   ├── UnsafePathError          traversal, absolute, backslash, NUL, too deep
    │   ├── UnsupportedEntryError    symlink, device, directory, encrypted, odd codec
    │   ├── DuplicateEntryError      same name, or case-fold / Unicode collision
    │   ├── OverlappingEntriesError  entries sharing bytes (zip bomb shape, A2)
    │   └── ArchiveMismatchError     entries differ from the manifest's file list
    └── IllegalTransitionError       an event the device state machine cannot take

Packages map foreign exceptions (zipfile, cattrs, nacl, httpx, SQLAlchemy) to
these types at their edges, so callers catch ``HotPatchError`` and nothing
else for bad input.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ArchiveMismatchError",
    "BadSignatureError",
    "DuplicateEntryError",
    "EpochError",
    "EquivocationError",
    "ExpiredError",
    "FormatError",
    "FreshnessError",
    "HashMismatchError",
    "HotPatchError",
    "IdentityMismatchError",
    "IllegalTransitionError",
    "KeyFormatError",
    "KeyScopeError",
    "MalformedEnvelopeError",
    "OverlappingEntriesError",
    "PayloadTypeError",
    "RollbackError",
    "RootRotationError",
    "SchemaError",
    "StrictJSONError",
    "ThresholdError",
    "TooLargeError",
    "UnknownKeyError",
    "UnsafePathError",
    "UnsignedError",
    "UnsupportedEntryError",
    "UnsupportedFormatError",
    "VerificationError",
    "VersionSyntaxError",
    "WithdrawnError",
    "WithheldError",
]


class HotPatchError(Exception):
    """Base of every error HotPatch raises for bad input or refused trust."""


class FormatError(HotPatchError):
    """The input is not a well-formed document of the expected kind."""


class StrictJSONError(FormatError):
    """The bytes are not strict JSON (duplicate keys, NaN, floats, huge ints, bad UTF-8)."""


class SchemaError(FormatError):
    """A document has the wrong fields, types or values.

    ``field`` names the offending field as a dotted path (``archive.sha256``,
    ``files[3].path``) or is empty when the document as a whole is wrong.
    """

    def __init__(self, message: str, field: str = "") -> None:
        """Describe the problem and name the field at fault."""
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class MalformedEnvelopeError(FormatError):
    """The bytes are not a signature envelope (truncated, wrong shape, bad base64)."""


class UnsupportedFormatError(FormatError):
    """The document declares a format version this code does not understand."""


class VersionSyntaxError(FormatError):
    """A string is not a semantic version or a binary-compatibility range."""


class KeyFormatError(FormatError):
    """The bytes are not an Ed25519 key in the expected encoding."""


class TooLargeError(HotPatchError):
    """A size, count or length exceeded its cap.

    ``what`` names the capped quantity and ``limit`` its maximum.
    """

    def __init__(self, what: str, limit: int) -> None:
        """Name the capped quantity and its limit."""
        super().__init__(f"{what} exceeds the limit of {limit}")
        self.what = what
        self.limit = limit


class VerificationError(HotPatchError):
    """The signatures on a document do not establish trust in it."""


class PayloadTypeError(VerificationError):
    """The envelope carries a different document type than the one expected."""


class UnsignedError(VerificationError):
    """The envelope has no signature at all."""


class UnknownKeyError(VerificationError):
    """Every signature names or uses a key the trust root does not list."""


class BadSignatureError(VerificationError):
    """A signature by a known key does not verify over these exact bytes."""


class KeyScopeError(VerificationError):
    """A key signed a document outside the apps, platforms or channels it may sign."""


class ExpiredError(VerificationError):
    """A key, trust root or manifest is past its expiry time."""


class ThresholdError(VerificationError):
    """Fewer distinct verified keys signed than the threshold requires."""


class RootRotationError(VerificationError):
    """A new trust root does not follow from the current one."""


class IdentityMismatchError(HotPatchError):
    """A validly signed release is for another app, platform, channel or binary.

    ``field`` is one of ``app_id``, ``platform``, ``channel`` or ``binary_range``.
    """

    def __init__(self, message: str, field: str) -> None:
        """Describe the mismatch and name the identity field."""
        super().__init__(message)
        self.field = field


class EpochError(HotPatchError):
    """A manifest was signed in another trust epoch than the device's root."""


class RollbackError(HotPatchError):
    """A release is older than the newest one this device already accepted."""


class EquivocationError(HotPatchError):
    """Two different manifests claim the same (epoch, sequence)."""


class HashMismatchError(HotPatchError):
    """Bytes differ from the hash or length their signed manifest declares."""


class FreshnessError(HotPatchError):
    """A check answer contradicts the signed channel head that came with it (A5).

    The head, signed by the trust root's timestamp key, lists the releases the
    server may offer right now; a mirror that replays an old answer, serves a
    withdrawn release or hides a newer one is caught by the difference.
    """


class WithdrawnError(FreshnessError):
    """The offered release is not among the releases the channel head lists as live."""


class WithheldError(FreshnessError):
    """The answer does not offer the release the channel head says this device gets."""


class ArchiveError(HotPatchError):
    """An archive breaks the strict extractor's rules."""


class UnsafePathError(ArchiveError):
    """An entry name could escape or confuse the destination directory."""


class UnsupportedEntryError(ArchiveError):
    """An entry is not a plain stored or deflated regular file."""


class DuplicateEntryError(ArchiveError):
    """Two entries share a name, or collide after case-folding or normalisation."""


class OverlappingEntriesError(ArchiveError):
    """Two entries share bytes of the archive, the shape of a zip bomb."""


class ArchiveMismatchError(ArchiveError):
    """The archive's entries differ from the files its manifest declares."""


class IllegalTransitionError(HotPatchError):
    """The device state machine received an event its current phase cannot take."""
