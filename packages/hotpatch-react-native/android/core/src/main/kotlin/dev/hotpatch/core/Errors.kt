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
