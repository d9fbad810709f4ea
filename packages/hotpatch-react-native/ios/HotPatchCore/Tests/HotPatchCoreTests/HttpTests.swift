import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import XCTest
@testable import HotPatchCore

/// A server on 127.0.0.1 for one request: it answers 200 with `body`, written as fast as
/// the connection takes it.
final class BodyServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32

    init(body: [UInt8]) throws {
        #if os(Linux)
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let listener = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        self.listener = listener
        guard listener >= 0 else { throw HotPatchError(.network, "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(listener, raw, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, raw, &length) == 0
            }
        }
        guard bound else { throw HotPatchError(.network, "cannot listen on 127.0.0.1") }
        port = UInt16(bigEndian: address.sin_port)
        Thread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { closeSocket(connection) }
            var request = [UInt8](repeating: 0, count: 4096)
            var seen: [UInt8] = []
            while !seen.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) {
                let got = recv(connection, &request, request.count, 0)
                if got <= 0 { return }
                seen += request[0..<got]
            }
            let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
            for part in [head, body] {
                var sent = 0
                while sent < part.count {
                    let wrote = part[sent...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }
                    if wrote <= 0 { return }
                    sent += wrote
                }
            }
        }.start()
    }

    deinit { closeSocket(listener) }
}

private func closeSocket(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #else
    _ = Darwin.close(fd)
    #endif
}

final class HttpTests: XCTestCase {
    private let limit = 256 << 10

    /// Read all of `body` from a server through `URLSessionHttp`, 10,000 bytes at a time (less
    /// than URLSession's parts, and not a divisor of them) with a pause after each, as the agent
    /// hashes, writes and syncs each part to disk.
    private func readSlowly(_ body: [UInt8]) throws -> (received: [UInt8], peak: Int) {
        let server = try BodyServer(body: body)
        let http = URLSessionHttp(idleTimeout: 30, bufferLimit: limit)
        let response = try http.get("http://127.0.0.1:\(server.port)/archive", headers: [:])
        defer { response.close() }
        XCTAssertEqual(response.status, 200)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 10_000, alignment: 1)
        defer { buffer.deallocate() }
        var received: [UInt8] = []
        received.reserveCapacity(body.count)
        while true {
            let got = try response.read(into: buffer)
            if got == 0 { break }
            received += buffer[0..<got]
            usleep(100)
        }
        return (received, try XCTUnwrap(response as? StreamingResponse).peakBuffered)
    }

    /// 4 MiB (16 times the limit) that no shorter period repeats in (xorshift), so a part read twice or skipped shows.
    private func body() -> [UInt8] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<(4 << 20)).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 32)
        }
    }

    func testABodyReadInPartsArrivesWholeAndInOrder() throws {
        let body = body()
        let (received, _) = try readSlowly(body)
        XCTAssertEqual(received.count, body.count)
        XCTAssertTrue(received == body)
    }

    // Only where URLSession can pause a transfer: not in swift-corelibs-foundation (Linux),
    // so `swift test` on a Mac runs it and run_tests.py here does not.
    #if !canImport(FoundationNetworking)
    func testASlowReaderHoldsAtMostAboutTheBufferLimit() throws {
        let body = body()
        let (received, peak) = try readSlowly(body)
        XCTAssertTrue(received == body, "the body arrives whole and in order across pauses")
        // Bytes already on their way when the transfer paused still arrive: a little over the limit.
        XCTAssertLessThanOrEqual(peak, 2 * limit, "held \(peak) bytes unread")
    }
    #endif
}
