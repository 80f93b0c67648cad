import HTTPServer
import SparseJSON

/// TEI's error body, `{"error": "...", "error_type": "..."}`, and its statuses: 413 validation
/// (too many inputs, an input over the token limit), 422 validation (wrong JSON types, empty
/// inputs), 424 backend (inference failed), 429 overloaded (queue full or timed out),
/// 503 unhealthy (the endpoint is not loaded), 400 validation (malformed JSON or token ids),
/// 401 unauthorized (a JSON body, where TEI sends none: every error here names its problem).
enum TEIErrors {
    static func type(_ status: Int) -> String {
        switch status {
        case 401: return "unauthorized"
        case 429: return "overloaded"
        case 503: return "unhealthy"
        case 424, 500...: return "backend"
        default: return "validation"
        }
    }

    static func response(_ status: Int, _ message: String) -> HTTPResponse {
        .json(status: status, JSONWriter.encode(.object([("error", .string(message)), ("error_type", .string(type(status)))])))
    }

    /// An answer of the shared inference path in TEI's statuses: a full or timed-out queue (503)
    /// is TEI's 429 overloaded, a failed inference (500) its 424 backend error.
    static func pipeline(_ status: Int, _ message: String) -> HTTPResponse {
        switch status {
        case 503: return response(429, message)
        case 500: return response(424, message)
        default: return response(status, message)
        }
    }

    /// `error` in TEI's shape.
    static func response(_ error: any Error) -> HTTPResponse {
        let (status, message, _) = ResponseErrors.describe(error)
        return pipeline(status, message)
    }
}
