import Foundation
import XCTest
@testable import HTTPServer

/// `reloadTLS()` swaps the certificate for new connections and keeps the old one when the new
/// files do not load.
final class TLSReloadTests: XCTestCase {
    func testReloadServesTheNewCertificateAndRefusesABrokenOne() throws {
        let certificates = try TestCertificates.shared()
        let directory = certificates.directory + "/reload-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificate = directory + "/server.pem", key = directory + "/server.key"
        func install(_ pem: String, _ pemKey: String) throws {
            for (from, to) in [(pem, certificate), (pemKey, key)] {
                try? FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
        }
        try install(certificates.serverCertificate, certificates.serverKey)
        let server = try startServer(configure: { $0.tls = TLSConfiguration(certificatePath: certificate, privateKeyPath: key) })
        defer { server.stop(gracePeriod: 1) }
        let url = "https://127.0.0.1:\(server.boundPort)/text"
        XCTAssertEqual(try curl([url], certificates: certificates).status, 200)

        // Another certificate (not signed by the test CA): verification against the CA now fails.
        try install(certificates.rogueCertificate, certificates.rogueKey)
        try server.reloadTLS()
        XCTAssertEqual(try curl([url], certificates: certificates).status, 0, "the reloaded certificate must be served")
        XCTAssertEqual(try curl(["-k", url], certificates: certificates).status, 200)

        // A key that does not match: refused, the rogue certificate keeps serving.
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: certificates.serverKey, toPath: key)
        XCTAssertThrowsError(try server.reloadTLS()) { XCTAssertTrue("\($0)".contains("private key"), "\($0)") }
        XCTAssertEqual(try curl(["-k", url], certificates: certificates).status, 200)

        try install(certificates.serverCertificate, certificates.serverKey)
        try server.reloadTLS()
        XCTAssertEqual(try curl([url], certificates: certificates).status, 200)
    }

    func testReloadOnAPlaintextServerDoesNothing() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        XCTAssertNoThrow(try server.reloadTLS())
    }
}
