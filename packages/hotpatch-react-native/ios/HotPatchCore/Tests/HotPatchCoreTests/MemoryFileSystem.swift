import Foundation
@testable import HotPatchCore

/// Thrown when the simulated power cut happens; every operation after it throws it too.
struct PowerCut: Error {
    let message: String
}

/// A `FileSystem` that keeps only what was synced across a power cut: file content becomes
/// durable at `WritableFile.sync`, directory entries at `FileSystem.syncDirectory`. `cutAt`
/// cuts the power at that mutating operation; `afterCut` is what the device finds when it
/// starts again.
final class MemoryFileSystem: FileSystem {
    private final class Node {
        let directory: Bool
        var data: [UInt8] = []
        var durableData: [UInt8] = []
        var entries: [String: Node] = [:]
        var durableEntries: [String: Node] = [:]

        init(directory: Bool) { self.directory = directory }
    }

    private var root = Node(directory: true)
    private(set) var operations = 0
    var cutAt: Int?
    private(set) var trace: [String] = []

    private func operation(_ name: String, _ path: String) throws {
        operations += 1
        trace.append("\(name) \(path)")
        if let cutAt, operations >= cutAt { throw PowerCut(message: "power cut at operation \(operations): \(name) \(path)") }
    }

    private func walk(_ path: String) -> Node? {
        var node: Node? = root
        for part in path.split(separator: "/") where !part.isEmpty {
            guard let current = node, current.directory else { return nil }
            node = current.entries[String(part)]
        }
        return node
    }

    private func parent(_ path: String) throws -> (Node, String) {
        let head = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
        guard let node = walk(head), node.directory else { throw StorageError("no directory \(head)") }
        return (node, String(path.split(separator: "/").last ?? ""))
    }

    private final class Writable: WritableFile {
        let node: Node
        let path: String
        unowned let fs: MemoryFileSystem

        init(_ node: Node, _ path: String, _ fs: MemoryFileSystem) {
            self.node = node
            self.path = path
            self.fs = fs
        }

        func write(_ data: UnsafeRawBufferPointer) { node.data += data }

        func sync() throws {
            try fs.operation("fsync", path)
            node.durableData = node.data
        }

        func close() {}
    }

    func create(_ path: String) throws -> WritableFile {
        try operation("create", path)
        let (dir, name) = try parent(path)
        let node = dir.entries[name] ?? Node(directory: false)
        if node.directory { throw StorageError("\(path) is a directory") }
        dir.entries[name] = node
        node.data = []
        return Writable(node, path, self)
    }

    func append(_ path: String) throws -> WritableFile {
        guard let node = walk(path), !node.directory else { throw StorageError("no file \(path)") }
        return Writable(node, path, self)
    }

    private final class Readable: ReadableFile {
        private let source: BytesSource

        init(_ data: [UInt8]) { source = BytesSource(data) }

        var size: Int64 { source.size }

        func read(at position: Int64, into: UnsafeMutableRawBufferPointer) -> Int { source.read(at: position, into: into) }

        func close() {}
    }

    func openRead(_ path: String) throws -> ReadableFile {
        guard let node = walk(path), !node.directory else { throw StorageError("no file \(path)") }
        return Readable(node.data)
    }

    func size(_ path: String) -> Int64? {
        guard let node = walk(path), !node.directory else { return nil }
        return Int64(node.data.count)
    }

    func list(_ path: String) -> [String] {
        guard let node = walk(path), node.directory else { return [] }
        return node.entries.keys.sorted()
    }

    func mkdir(_ path: String) throws {
        try operation("mkdir", path)
        let (dir, name) = try parent(path)
        if dir.entries[name] == nil { dir.entries[name] = Node(directory: true) }
    }

    func syncDirectory(_ path: String) throws {
        try operation("fsync_dir", path)
        guard let node = walk(path), node.directory else { throw StorageError("no directory \(path)") }
        node.durableEntries = node.entries
    }

    func replace(_ source: String, _ target: String) throws {
        try operation("rename", "\(source) -> \(target)")
        let (from, name) = try parent(source)
        guard let node = from.entries[name] else { throw StorageError("no file \(source)") }
        let (to, targetName) = try parent(target)
        if let existing = to.entries[targetName], existing.directory, !existing.entries.isEmpty {
            throw StorageError("\(target) is not empty")
        }
        from.entries[name] = nil
        to.entries[targetName] = node
    }

    func remove(_ path: String) throws {
        try operation("unlink", path)
        guard let (dir, name) = try? parent(path) else { return }
        if dir.entries[name]?.directory == false { dir.entries[name] = nil }
    }

    func removeTree(_ path: String) throws {
        try operation("rmtree", path)
        guard let (dir, name) = try? parent(path) else { return }
        dir.entries[name] = nil
    }

    /// What a device finds after the power comes back: only what was synced.
    func afterCut() -> MemoryFileSystem {
        let copy = MemoryFileSystem()
        copy.root = Self.durableCopy(root)
        return copy
    }

    /// Every file path (directories end with a slash), for assertions.
    func files() -> [String] { Self.files("", root) }

    private static func files(_ prefix: String, _ node: Node) -> [String] {
        node.entries.keys.sorted().flatMap { name -> [String] in
            let child = node.entries[name]!
            let path = prefix.isEmpty ? name : "\(prefix)/\(name)"
            return child.directory ? files(path, child) + ["\(path)/"] : [path]
        }
    }

    private static func durableCopy(_ node: Node) -> Node {
        let copy = Node(directory: node.directory)
        copy.data = node.durableData
        copy.durableData = node.durableData
        for (name, child) in node.durableEntries { copy.entries[name] = durableCopy(child) }
        copy.durableEntries = copy.entries
        return copy
    }
}
