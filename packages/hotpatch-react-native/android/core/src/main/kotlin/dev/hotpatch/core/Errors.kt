package dev.hotpatch.core

/**
 * The errors of the core, one class per defence, named as the Python reference
 * names them (hotpatch_core.errors): a conformance scenario's `Reject` names the
 * class, and [reason] gives that name on every platform.
 */
sealed class HotPatchException(message: String) : Exception(message) {
    /** The reference's class name of this error (for example `RollbackError`). */
    abstract val reason: String
}

/** Bytes that are not a well-formed document of the kind expected. */
open class FormatException(message: String) : HotPatchException(message) {
    override val reason: String get() = "FormatError"
}

/** JSON that a strict parser refuses (duplicate keys, floats, a BOM, ...). */
class StrictJsonException(message: String) : FormatException(message) {
    override val reason: String get() = "StrictJSONError"
}

/** An envelope that is not `{payloadType, payload, signatures}` with base64 parts. */
class MalformedEnvelopeException(message: String) : FormatException(message) {
    override val reason: String get() = "MalformedEnvelopeError"
}

/** A size, count or length over its cap. */
class TooLargeException(what: String, val limit: Long) :
    HotPatchException("$what exceeds the limit of $limit") {
    override val reason: String get() = "TooLargeError"
}

/** A document whose fields are missing, of the wrong type, or out of range. */
class SchemaException(message: String, val field: String) : FormatException(if (field.isEmpty()) message else "$field: $message") {
    override val reason: String get() = "SchemaError"
}

/** A document of a format version this core does not read. */
class UnsupportedFormatException(message: String) : FormatException(message) {
    override val reason: String get() = "UnsupportedFormatError"
}

/** The signatures on a document do not establish trust in it. */
open class VerificationException(message: String, override val reason: String = "VerificationError") :
    HotPatchException(message)

class PayloadTypeException(message: String) : VerificationException(message, "PayloadTypeError")

class UnsignedException(message: String) : VerificationException(message, "UnsignedError")

class UnknownKeyException(message: String) : VerificationException(message, "UnknownKeyError")

class BadSignatureException(message: String) : VerificationException(message, "BadSignatureError")

class ThresholdException(message: String) : VerificationException(message, "ThresholdError")

class ExpiredException(message: String) : VerificationException(message, "ExpiredError")

class RootRotationException(message: String) : VerificationException(message, "RootRotationError")

/** A version or binary range that does not parse. */
class VersionSyntaxException(message: String) : FormatException(message) {
    override val reason: String get() = "VersionSyntaxError"
}

/** A publisher key signed outside the apps, platforms or channels it may sign. */
class KeyScopeException(message: String) : VerificationException(message, "KeyScopeError")

/** A signed document for another app, platform, channel or native version. */
class IdentityMismatchException(message: String, val field: String) : HotPatchException(message) {
    override val reason: String get() = "IdentityMismatchError"
}

/** A release of another epoch than the trust root's. */
class EpochException(message: String) : HotPatchException(message) {
    override val reason: String get() = "EpochError"
}

/** A release (or channel head) older than one the device already accepted. */
class RollbackException(message: String) : HotPatchException(message) {
    override val reason: String get() = "RollbackError"
}

/** A different manifest at an (epoch, sequence) the device already accepted. */
class EquivocationException(message: String) : HotPatchException(message) {
    override val reason: String get() = "EquivocationError"
}

/** Bytes whose sha256 or length differ from the signed ones. */
open class HashMismatchException(message: String, override val reason: String = "HashMismatchError") :
    HotPatchException(message)

/** An answer that contradicts its signed channel head. */
open class FreshnessException(message: String, override val reason: String = "FreshnessError") :
    HotPatchException(message)

/** The offered release is not one the channel head lists. */
class WithdrawnException(message: String) : FreshnessException(message, "WithdrawnError")

/** The answer does not offer what the channel head says is due to this device. */
class WithheldException(message: String) : FreshnessException(message, "WithheldError")

/** An archive, or its file list, that breaks the strict rules. */
open class ArchiveException(message: String, override val reason: String = "ArchiveError") :
    HotPatchException(message)

class UnsafePathException(message: String) : ArchiveException(message, "UnsafePathError")

class DuplicateEntryException(message: String) : ArchiveException(message, "DuplicateEntryError")

class ArchiveMismatchException(message: String) : ArchiveException(message, "ArchiveMismatchError")

/** Links, devices, directories, encryption, or a codec other than stored and deflate. */
class UnsupportedEntryException(message: String) : ArchiveException(message, "UnsupportedEntryError")

/** Two entries share bytes (the shape of the best-known zip bombs). */
class OverlappingEntriesException(message: String) : ArchiveException(message, "OverlappingEntriesError")

/** An event the device's current phase cannot take; nothing changed. */
class IllegalTransitionException(message: String) : HotPatchException(message) {
    override val reason: String get() = "IllegalTransitionError"
}

/** Bytes that are not a patch this core can read (hotpatch_diff.PatchFormatError). */
class PatchFormatException(message: String) : FormatException(message) {
    override val reason: String get() = "PatchFormatError"
}

/** A patch made from, or for, another release than the one at hand (hotpatch_diff.WrongBaseError). */
class WrongBaseException(message: String) : HotPatchException(message) {
    override val reason: String get() = "WrongBaseError"
}
