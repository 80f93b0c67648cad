import CSparseKernels

/// A C kernel call that did nothing and said why (a non-zero `ss_status`, see `status.h`).
public struct KernelError: Error, Equatable, CustomStringConvertible {
    /// The C status value (`SS_ERR_ARGUMENT`, `SS_ERR_NO_MEMORY`, …).
    public let status: Int32
    /// Which kernel, e.g. "nm 2:4 gemm 384→1536".
    public let operation: String

    public var isOutOfMemory: Bool { status == SS_ERR_NO_MEMORY.rawValue }

    public var description: String { "\(operation): \(String(cString: ss_status_message(status)))" }

    /// Throws unless `status` is `SS_OK`.
    public static func check(_ status: Int32, _ operation: @autoclosure () -> String) throws {
        guard status != SS_OK.rawValue else { return }
        throw KernelError(status: status, operation: operation())
    }

    /// For the non-throwing `LinearOperator.apply` path: a failed kernel stops the process with the
    /// error's message rather than returning garbage outputs.
    static func require(_ status: Int32, _ operation: @autoclosure () -> String) {
        do { try check(status, operation()) } catch { fatalError("\(error)") }
    }
}
