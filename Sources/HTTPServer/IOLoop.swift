import Dispatch

/// One serial I/O queue plus a read buffer shared by the connections assigned to it
/// (safe because everything using the buffer runs on that queue).
final class IOLoop: @unchecked Sendable {
    static let readBufferSize = 64 * 1024

    let queue: DispatchQueue
    let readBuffer: UnsafeMutableRawBufferPointer

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
    }

    deinit { readBuffer.deallocate() }
}
