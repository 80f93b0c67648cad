import HTTPServer
import SparseJSON
import SparseModels

/// An error that knows how it is answered: the HTTP status, the message the client reads in
/// `{"error": ...}`, and the failure reason inference metrics count it under. Every error a
/// handler or the inference pipeline throws maps to a response through `ResponseErrors.describe`.
protocol ResponseError: Error {
    var responseStatus: Int { get }
    var responseMessage: String { get }
    var failureReason: FailureReason { get }
}

/// The `reason` label of `sparseserve_inference_failures_total`.
public enum FailureReason: String, Sendable, CaseIterable {
    /// The request was wrong (a 4xx).
    case invalidInput = "invalid_input"
    /// The server failed (a 5xx).
    case `internal`
    /// The request waited in the queue past its `parameters.timeout`.
    case timeout
    /// A queue was full.
    case rejected
    /// The client left before the request ran.
    case cancelled
}

/// A protocol-level failure with the HTTP status it maps to (400 for bad input, 404 for unknown
/// models, ...). The message is what the client sees in `{"error": ...}`.
public struct ProtocolError: ResponseError, CustomStringConvertible, Sendable {
    public var status: Int
    public var message: String
    /// `invalidInput` (4xx) or `internal` (5xx) unless set more precisely.
    public var reason: FailureReason
    public init(_ status: Int, _ message: String, reason: FailureReason? = nil) {
        self.status = status
        self.message = message
        self.reason = reason ?? (status < 500 ? .invalidInput : .internal)
    }
    public var description: String { message }
    var responseStatus: Int { status }
    var responseMessage: String { message }
    var failureReason: FailureReason { reason }
}

extension ConfigError: ResponseError {
    var responseStatus: Int { 400 }
    var responseMessage: String { description }
    var failureReason: FailureReason { .invalidInput }
}

extension JSONParseError: ResponseError {
    var responseStatus: Int { 400 }
    var responseMessage: String { "malformed JSON body: \(self)" }
    var failureReason: FailureReason { .invalidInput }
}

extension InvalidInputError: ResponseError {
    var responseStatus: Int { 400 }
    var responseMessage: String { description }
    var failureReason: FailureReason { .invalidInput }
}

enum ResponseErrors {
    /// How `error` is answered; errors that do not describe themselves are internal (500).
    static func describe(_ error: any Error) -> (status: Int, message: String, reason: FailureReason) {
        if let known = error as? any ResponseError { return (known.responseStatus, known.responseMessage, known.failureReason) }
        return (500, "internal error: \(error)", .internal)
    }

    /// `{"error": ...}` for `error`.
    static func response(_ error: any Error) -> HTTPResponse {
        let (status, message, _) = describe(error)
        return .error(status: status, message)
    }
}
