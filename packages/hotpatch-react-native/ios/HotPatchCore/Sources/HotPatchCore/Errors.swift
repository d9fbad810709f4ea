/// An error of the core: one `Reason` per defence, named as the Python
/// reference names its exception classes (hotpatch_core.errors), so a
/// conformance scenario's expected rejection compares on every platform.
public struct HotPatchError: Error, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        case format = "FormatError"
        case strictJSON = "StrictJSONError"
        case malformedEnvelope = "MalformedEnvelopeError"
        case schema = "SchemaError"
        case unsupportedFormat = "UnsupportedFormatError"
        case versionSyntax = "VersionSyntaxError"
        case tooLarge = "TooLargeError"
        case verification = "VerificationError"
        case payloadType = "PayloadTypeError"
        case unsigned = "UnsignedError"
        case unknownKey = "UnknownKeyError"
        case badSignature = "BadSignatureError"
        case threshold = "ThresholdError"
        case expired = "ExpiredError"
        case rootRotation = "RootRotationError"
        case keyScope = "KeyScopeError"
        case identityMismatch = "IdentityMismatchError"
        case epoch = "EpochError"
        case rollback = "RollbackError"
        case equivocation = "EquivocationError"
        case hashMismatch = "HashMismatchError"
        case localTampering = "LocalTamperingError"
        case freshness = "FreshnessError"
        case withdrawn = "WithdrawnError"
        case withheld = "WithheldError"
        case illegalTransition = "IllegalTransitionError"
        case network = "NetworkError"
        case storage = "StorageError"
        case archive = "ArchiveError"
        case unsafePath = "UnsafePathError"
        case duplicateEntry = "DuplicateEntryError"
        case archiveMismatch = "ArchiveMismatchError"
        case unsupportedEntry = "UnsupportedEntryError"
        case overlappingEntries = "OverlappingEntriesError"
        case patchFormat = "PatchFormatError"
        case wrongBase = "WrongBaseError"

        /// The reference's base class: a `StrictJSONError` is also a `FormatError`.
        public var parent: Reason? {
            switch self {
            case .strictJSON, .malformedEnvelope, .schema, .unsupportedFormat, .versionSyntax, .patchFormat:
                return .format
            case .payloadType, .unsigned, .unknownKey, .badSignature, .threshold, .expired,
                 .rootRotation, .keyScope:
                return .verification
            case .unsafePath, .duplicateEntry, .archiveMismatch, .unsupportedEntry, .overlappingEntries:
                return .archive
            case .withdrawn, .withheld:
                return .freshness
            case .localTampering:
                return .hashMismatch
            case .network, .storage:
                return nil
            case .format, .tooLarge, .verification, .archive, .identityMismatch, .epoch, .rollback,
                 .equivocation, .hashMismatch, .freshness, .illegalTransition, .wrongBase:
                return nil
            }
        }

        /// Whether this reason is `other` or derives from it.
        public func isA(_ other: Reason) -> Bool {
            self == other || parent.map { $0.isA(other) } == true
        }
    }

    public let reason: Reason
    public let message: String
    /// The document field at fault, for a `SchemaError` ("" for the document itself).
    public let field: String
    /// For a `NetworkError`: whether a later try may work.
    public let retryable: Bool

    public init(_ reason: Reason, _ message: String, field: String = "", retryable: Bool = true) {
        self.reason = reason
        self.message = field.isEmpty ? message : "\(field): \(message)"
        self.field = field
        self.retryable = retryable
    }

    public var description: String { "\(reason.rawValue): \(message)" }

    static func schema(_ message: String, _ field: String) -> HotPatchError {
        HotPatchError(.schema, message, field: field)
    }

    static func tooLarge(_ what: String, limit: Int) -> HotPatchError {
        HotPatchError(.tooLarge, "\(what) exceeds the limit of \(limit)")
    }
}
