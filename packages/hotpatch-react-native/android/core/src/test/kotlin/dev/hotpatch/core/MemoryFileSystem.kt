package dev.hotpatch.core

import java.io.FileNotFoundException
import java.io.IOException

/** Thrown when the simulated power cut happens; nothing runs after it. */
class PowerCut(message: String) : Error(message)

/**
 * A [FileSystem] that keeps only what was synced across a power cut: file
 * content becomes durable at [WritableFile.sync], directory entries at
 * [FileSystem.syncDirectory]. [cutAt] cuts the power at that mutating
 * operation; [afterCut] is what the device finds when it starts again.
 */
class MemoryFileSystem : FileSystem {
    private class Node(val directory: Boolean) {
        var data = ByteArray(0)
        var durableData = ByteArray(0)
        val entries = sortedMapOf<String, Node>()
        var durableEntries: Map<String, Node> = emptyMap()
    }

    private var root = Node(true).also { it.durableEntries = emptyMap() }
    var operations = 0
        private set
    var cutAt: Int? = null
    val trace = mutableListOf<String>()

    private fun operation(name: String, path: String) {
        operations++
        trace.add("$name $path")
        if (cutAt != null && operations >= cutAt!!) throw PowerCut("power cut at operation $operations: $name $path")
    }

    private fun walk(path: String): Node? {
        var node: Node? = root
        for (part in path.split("/").filter { it.isNotEmpty() }) node = node?.takeIf { it.directory }?.entries?.get(part)
        return node
    }

    private fun parent(path: String): Pair<Node, String> {
        val head = path.substringBeforeLast('/', "")
        val node = walk(head)?.takeIf { it.directory } ?: throw FileNotFoundException("no directory $head")
        return node to path.substringAfterLast('/')
    }

    override fun create(path: String): WritableFile {
        operation("create", path)
        val (dir, name) = parent(path)
        val node = dir.entries.getOrPut(name) { Node(false) }
        if (node.directory) throw IOException("$path is a directory")
        node.data = ByteArray(0)
        return writable(node, path)
    }

    override fun append(path: String): WritableFile {
        val node = walk(path)?.takeUnless { it.directory } ?: throw FileNotFoundException(path)
        return writable(node, path)
    }

    private fun writable(node: Node, path: String): WritableFile {
        return object : WritableFile {
            override fun write(data: ByteArray, offset: Int, length: Int) {
                node.data = node.data + data.copyOfRange(offset, offset + length)
            }

            override fun sync() {
                operation("fsync", path)
                node.durableData = node.data.copyOf()
            }

            override fun close() = Unit
        }
    }

    override fun openRead(path: String): ReadableFile {
        val node = walk(path)?.takeUnless { it.directory } ?: throw FileNotFoundException(path)
        val source = ArchiveSource.Bytes(node.data.copyOf())
        return object : ReadableFile, ArchiveSource by source {
            override fun close() = Unit
        }
    }

    override fun size(path: String): Long? = walk(path)?.takeUnless { it.directory }?.data?.size?.toLong()

    override fun list(path: String): List<String> = walk(path)?.takeIf { it.directory }?.entries?.keys?.toList() ?: emptyList()

    override fun mkdir(path: String) {
        operation("mkdir", path)
        val (dir, name) = parent(path)
        dir.entries.getOrPut(name) { Node(true) }
    }

    override fun syncDirectory(path: String) {
        operation("fsync_dir", path)
        val node = walk(path)?.takeIf { it.directory } ?: throw FileNotFoundException(path)
        node.durableEntries = node.entries.toMap()
    }

    override fun replace(source: String, target: String) {
        operation("rename", "$source -> $target")
        val (from, name) = parent(source)
        val node = from.entries[name] ?: throw FileNotFoundException(source)
        val (to, targetName) = parent(target)
        val existing = to.entries[targetName]
        if (existing != null && existing.directory && existing.entries.isNotEmpty()) throw IOException("$target is not empty")
        from.entries.remove(name)
        to.entries[targetName] = node
    }

    override fun remove(path: String) {
        operation("unlink", path)
        val dir = walk(path.substringBeforeLast('/', ""))?.takeIf { it.directory } ?: return
        if (dir.entries[path.substringAfterLast('/')]?.directory == false) dir.entries.remove(path.substringAfterLast('/'))
    }

    override fun removeTree(path: String) {
        operation("rmtree", path)
        val dir = walk(path.substringBeforeLast('/', ""))?.takeIf { it.directory } ?: return
        dir.entries.remove(path.substringAfterLast('/'))
    }

    /** What a device finds after the power comes back: only what was synced. */
    fun afterCut(): MemoryFileSystem = MemoryFileSystem().also { it.root = durableCopy(root) }

    /** Every file path, for assertions. */
    fun files(): List<String> = files("", root)

    private fun files(prefix: String, node: Node): List<String> = node.entries.flatMap { (name, child) ->
        val path = if (prefix.isEmpty()) name else "$prefix/$name"
        if (child.directory) files(path, child) + "$path/" else listOf(path)
    }

    private fun durableCopy(node: Node): Node {
        val copy = Node(node.directory)
        copy.data = node.durableData.copyOf()
        copy.durableData = node.durableData.copyOf()
        for ((name, child) in node.durableEntries) copy.entries[name] = durableCopy(child)
        copy.durableEntries = copy.entries.toMap()
        return copy
    }
}
