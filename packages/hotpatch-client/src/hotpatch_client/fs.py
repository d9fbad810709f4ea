"""The agent's file-system layer: every storage operation goes through here.

The agent never touches ``os`` or ``open`` directly; it calls a
:class:`FileSystem`. :class:`OsFileSystem` is the real one, rooted at the
agent's private storage directory. Tests substitute a model that can crash
at any operation, dropping whatever was not fsynced, and prove the install
protocol survives it (docs/security.md "Durable install").

Paths are relative POSIX strings (``"releases/<id>/files/index.android.bundle"``)
below the storage root; ``""`` is the root itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from hotpatch_client.errors import AgentLockedError

__all__ = ["FileSystem", "OsFileSystem", "walk_files"]


class FileSystem(Protocol):
    """The operations the agent needs, each one a potential crash point.

    ``concurrent`` says whether two threads may use it at once (the agent
    then overlaps fsyncs and hash checks with extraction).
    """

    concurrent: bool

    def open_new(self, path: str) -> BinaryIO:
        """Create (or truncate) a private (0600) file for reading and writing."""
        ...

    def open_existing(self, path: str) -> BinaryIO:
        """Open an existing file for reading and writing, positioned at its start."""
        ...

    def open_read(self, path: str) -> BinaryIO:
        """Open an existing file for reading."""
        ...

    def fsync(self, handle: BinaryIO) -> None:
        """Flush ``handle`` to stable storage."""
        ...

    def truncate(self, handle: BinaryIO, size: int) -> None:
        """Cut ``handle``'s file to ``size`` bytes and seek there."""
        ...

    def size(self, path: str) -> int | None:
        """Return a regular file's size, or None if there is none at ``path``."""
        ...

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Return the sorted names in directory ``path`` (empty if it does not exist)."""
        ...

    def mkdir(self, path: str) -> None:
        """Create directory ``path`` (private, 0700) if it does not exist; the parent must."""
        ...

    def fsync_dir(self, path: str) -> None:
        """Make ``path``'s entries (creations, renames, removals) durable."""
        ...

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` over ``target`` atomically (files, or a directory onto nothing)."""
        ...

    def remove(self, path: str) -> None:
        """Remove a file if it exists."""
        ...

    def rmtree(self, path: str) -> None:
        """Remove a directory tree if it exists."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the storage lock; raise :class:`AgentLockedError` if another agent holds it."""
        ...

    def display_path(self, path: str) -> str:
        """Return the path an app hands to its JS engine for ``path``."""
        ...


class OsFileSystem:
    """The real file system below ``root`` (created 0700 if missing)."""

    concurrent = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use ``root`` as the agent's private storage directory."""
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _abs(self, path: str) -> Path:
        return self.root / path if path else self.root

    def open_new(self, path: str) -> BinaryIO:
        """Create (or truncate) a private (0600) file for reading and writing."""
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self._abs(path), flags, 0o600)
        return os.fdopen(fd, "r+b")

    def open_existing(self, path: str) -> BinaryIO:
        """Open an existing file for reading and writing, positioned at its start."""
        fd = os.open(self._abs(path), os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "r+b")

    def open_read(self, path: str) -> BinaryIO:
        """Open an existing file for reading."""
        fd = os.open(self._abs(path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")

    def fsync(self, handle: BinaryIO) -> None:
        """Flush ``handle`` to stable storage."""
        handle.flush()
        os.fsync(handle.fileno())

    def truncate(self, handle: BinaryIO, size: int) -> None:
        """Cut ``handle``'s file to ``size`` bytes and seek there."""
        handle.truncate(size)
        handle.seek(size)

    def size(self, path: str) -> int | None:
        """Return a regular file's size, or None if there is none at ``path``."""
        try:
            info = os.lstat(self._abs(path))
        except FileNotFoundError:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory (not following symlinks)."""
        try:
            return stat.S_ISDIR(os.lstat(self._abs(path)).st_mode)
        except FileNotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        """Return the sorted names in directory ``path`` (empty if it does not exist)."""
        try:
            return sorted(entry.name for entry in self._abs(path).iterdir())
        except FileNotFoundError:
            return []

    def mkdir(self, path: str) -> None:
        """Create directory ``path`` (0700) if it does not exist; the parent must."""
        with contextlib.suppress(FileExistsError):
            self._abs(path).mkdir(mode=0o700)

    def fsync_dir(self, path: str) -> None:
        """Make ``path``'s entries durable (fsync on the directory itself)."""
        fd = os.open(self._abs(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` over ``target`` atomically."""
        self._abs(source).replace(self._abs(target))

    def remove(self, path: str) -> None:
        """Remove a file if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self._abs(path).unlink()

    def rmtree(self, path: str) -> None:
        """Remove a directory tree if it exists."""
        target = self._abs(path)
        if target.is_symlink() or target.is_file():
            target.unlink()
            return
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<root>/lock`` for the agent's lifetime."""
        import fcntl  # noqa: PLC0415 - POSIX only; imported where it is needed

        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise AgentLockedError(
                        f"another agent is using {self.root}; one storage directory per agent"
                    ) from None
                raise
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def display_path(self, path: str) -> str:
        """Return the absolute path of ``path``."""
        return str(self._abs(path))


def walk_files(fs: FileSystem, top: str = "") -> list[str]:
    """Return the paths of the regular files below ``top`` in ``fs``, sorted, ``/``-separated.

    Symlinks and other special files are left out (``size`` answers only
    for regular files).
    """
    found: list[str] = []
    for name in fs.listdir(top):
        path = f"{top}/{name}" if top else name
        if fs.is_dir(path):
            found += walk_files(fs, path)
        elif fs.size(path) is not None:
            found.append(path)
    return found
