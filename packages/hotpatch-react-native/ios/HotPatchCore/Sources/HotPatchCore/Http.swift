import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP answer: its status, headers (names in lower case) and body, read once.
public protocol HttpResponse: AnyObject {
    var status: Int { get }
    var headers: [String: String] { get }
    /// Read the next part of the body into `into`; the count read, 0 at the end.
    func read(into: UnsafeMutableRawBufferPointer) throws -> Int
    func close()
}

/// The agent's HTTP: GET with headers, and a JSON POST. A failure to connect or to
/// read throws `StorageError`-free `HotPatchError(.network)`.
public protocol Http: AnyObject {
    func get(_ url: String, headers: [String: String]) throws -> HttpResponse
    /// POST `body` as JSON; return the status code.
    func postJson(_ url: String, _ body: [UInt8]) throws -> Int
}

/// `Http` over `URLSession` (Foundation's, on iOS and on Linux), streaming bodies as they
/// arrive, with an idle timeout per request and no content encoding (bytes are hashed as sent).
public final class URLSessionHttp: Http {
    private let idleTimeout: TimeInterval
    private let bufferLimit: Int

    /// `bufferLimit`: the most body bytes a response holds before its reader takes them
    /// (past it, the transfer pauses until the reader catches up).
    public init(idleTimeout: TimeInterval = 30, bufferLimit: Int = 1 << 20) {
        self.idleTimeout = idleTimeout
        self.bufferLimit = max(bufferLimit, 1)
    }

    private func request(_ url: String) throws -> URLRequest {
        guard let target = URL(string: url) else {
            throw HotPatchError(.network, "not a URL: \(url.prefix(200))", retryable: false)
        }
        var request = URLRequest(url: target, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: idleTimeout)
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        return request
    }

    public func get(_ url: String, headers: [String: String]) throws -> HttpResponse {
        var request = try request(url)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let response = StreamingResponse(limit: bufferLimit)
        let session = URLSession(configuration: .ephemeral, delegate: response, delegateQueue: response.queue)
        response.start(session.dataTask(with: request), session: session)
        try response.waitForHead()
        return response
    }

    public func postJson(_ url: String, _ body: [UInt8]) throws -> Int {
        var request = try request(url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body)
        let response = StreamingResponse(limit: bufferLimit)
        let session = URLSession(configuration: .ephemeral, delegate: response, delegateQueue: response.queue)
        response.start(session.dataTask(with: request), session: session)
        defer { response.close() }
        try response.waitForHead()
        let sink = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 1)
        defer { sink.deallocate() }
        while try response.read(into: sink) > 0 {}
        return response.status
    }
}

/// A data task's answer, handed from URLSession's delegate queue to the reading thread.
/// Its mutable state is guarded by `condition`.
///
/// What has arrived and not been read is held in `chunks`, at most about `limit` bytes:
/// past it the task is suspended (URLSession stops taking bytes from the connection, and
/// TCP holds the server back) until the reader has taken it below half, so a slow reader
/// (hashing, writing and syncing each part to disk) never has a whole archive in memory.
/// Not on Linux, where this package is only tested: swift-corelibs-foundation's URLSession
/// cannot pause a transfer that is receiving (`canPause`).
final class StreamingResponse: NSObject, URLSessionDataDelegate, HttpResponse, @unchecked Sendable {
    let queue: OperationQueue = {
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        return queue
    }()
    let limit: Int
    private let condition = NSCondition()
    private var head: HTTPURLResponse?
    private var chunks: [Data] = []
    private var taken = 0 // bytes of chunks[0] already read
    private var buffered = 0 // bytes in chunks not yet read
    private var suspended = false
    private var done = false
    private var failure: Error?
    private var task: URLSessionDataTask?
    private var session: URLSession?
    /// The most bytes held unread at any time (tests read it).
    private(set) var peakBuffered = 0

    #if canImport(FoundationNetworking)
    static let canPause = false
    #else
    static let canPause = true
    #endif

    init(limit: Int = 1 << 20) {
        self.limit = limit
    }

    func start(_ task: URLSessionDataTask, session: URLSession) {
        self.task = task
        self.session = session
        task.resume()
    }

    var status: Int { head?.statusCode ?? 0 }

    var headers: [String: String] {
        var names: [String: String] = [:]
        for (name, value) in head?.allHeaderFields ?? [:] {
            names["\(name)".lowercased()] = "\(value)"
        }
        return names
    }

    func waitForHead() throws {
        condition.lock()
        defer { condition.unlock() }
        while head == nil && !done { condition.wait() }
        if head == nil {
            let why = failure.map { "\($0.localizedDescription)" } ?? "no answer"
            close(locked: true)
            throw HotPatchError(.network, "request failed: \(why)")
        }
    }

    func read(into: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        while buffered == 0 && !done { condition.wait() }
        if buffered == 0 {
            if let failure { throw HotPatchError(.network, "the body broke off: \(failure.localizedDescription)") }
            return 0
        }
        let chunk = chunks[0]
        let start = chunk.startIndex + taken
        let count = min(into.count, chunk.count - taken)
        chunk.copyBytes(to: into, from: start..<start + count)
        taken += count
        buffered -= count
        if taken == chunk.count {
            chunks.removeFirst()
            taken = 0
        }
        if suspended && buffered < limit / 2 {
            suspended = false
            task?.resume()
        }
        return count
    }

    func close() {
        condition.lock()
        defer { condition.unlock() }
        close(locked: true)
    }

    private func close(locked: Bool) {
        task?.cancel()
        task = nil
        session?.invalidateAndCancel() // a session keeps its delegate until it is invalidated
        session = nil
        chunks = []
        taken = 0
        buffered = 0
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        condition.lock()
        head = response as? HTTPURLResponse
        condition.broadcast()
        condition.unlock()
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        condition.lock()
        defer { condition.unlock() }
        guard task != nil, !data.isEmpty else { return } // closed: nobody reads it
        chunks.append(data)
        buffered += data.count
        peakBuffered = max(peakBuffered, buffered)
        if Self.canPause && !suspended && buffered >= limit {
            suspended = true
            task?.suspend()
        }
        condition.broadcast()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        condition.lock()
        done = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }
}
