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

    public init(idleTimeout: TimeInterval = 30) { self.idleTimeout = idleTimeout }

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
        let response = StreamingResponse()
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
        let response = StreamingResponse()
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
private final class StreamingResponse: NSObject, URLSessionDataDelegate, HttpResponse, @unchecked Sendable {
    let queue: OperationQueue = {
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        return queue
    }()
    private let condition = NSCondition()
    private var head: HTTPURLResponse?
    private var pending = Data()
    private var done = false
    private var failure: Error?
    private var task: URLSessionDataTask?
    private var session: URLSession?

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
        while pending.isEmpty && !done { condition.wait() }
        if pending.isEmpty {
            if let failure { throw HotPatchError(.network, "the body broke off: \(failure.localizedDescription)") }
            return 0
        }
        let count = min(into.count, pending.count)
        pending.copyBytes(to: into, from: pending.startIndex..<pending.startIndex + count)
        pending.removeFirst(count)
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
        pending = Data()
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
        pending.append(data)
        condition.broadcast()
        condition.unlock()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        condition.lock()
        done = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }
}
