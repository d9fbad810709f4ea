"""The bundle shipped inside an app binary, as a patch base.

A device that has never taken an OTA update runs the bundle embedded in its
binary. If the publisher registers that bundle with the server (``hotpatch
embedded register``), the first update can be a patch from it as well. Both
sides name it by :func:`embedded_id`: a hash of the app, platform, native
version and every file's path, size and SHA-256, so a device computes the
same id from the files it ships.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from hotpatch_core.archive import FileEntry
from hotpatch_core.strictjson import canonical

__all__ = ["embedded_id"]


def embedded_id(app_id: str, platform: str, native_version: str, files: Iterable[FileEntry]) -> str:
    """Return the id (64 hex digits) of the bundle embedded in one native version of an app."""
    document = {
        "embedded": {
            "appId": app_id,
            "platform": platform,
            "nativeVersion": native_version,
            "files": [
                {"path": f.path, "sha256": f.sha256, "size": f.size}
                for f in sorted(files, key=lambda f: f.path)
            ],
        }
    }
    return hashlib.sha256(canonical(document)).hexdigest()
