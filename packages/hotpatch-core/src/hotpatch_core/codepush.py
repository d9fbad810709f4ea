"""What the CodePush device protocol needs from a HotPatch release, computed exactly.

``react-native-code-push`` identifies an update by its *package hash*, which
the device computes over the files it unpacked (Android
``CodePushUpdateUtils.verifyFolderHash``, iOS ``CodePushUpdateUtils``, and the
release tool's ``hash-utils.js``)::

    lines = sorted("<path>:<lowercase hex sha256 of the file>" for every file)
    package_hash = sha256(JSON.stringify(lines)).hexdigest()

with paths ``/``-separated, relative to the unpacked folder, and the files
``__MACOSX/...``, ``.DS_Store`` and ``.codepushrelease`` (the code-signing
claim, which covers the hash) left out. The sort is by UTF-16 code unit
(Java ``Collections.sort``, JavaScript ``sort()``), which differs from
Python's code-point order for characters beyond the Basic Multilingual Plane.

HotPatch signs every file's path and sha256 in the release manifest, so the
hash comes from the signed file list alone: the server never opens an archive
to answer a CodePush check.

Labels: CodePush devices send back the label of the package they run. A
release's label is ``v<sequence>`` in epoch 1 and ``v<epoch>.<sequence>``
after an epoch change, so it names one position in the channel's history.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Final

from hotpatch_core.archive import FileEntry

__all__ = ["SIGNATURE_FILE", "hashed_paths", "label", "package_hash", "parse_label"]

#: The code-signing claim a CodePush device looks for; excluded from the hash.
SIGNATURE_FILE: Final = ".codepushrelease"
_LABEL: Final = re.compile(r"v(?:([1-9][0-9]{0,18})\.)?([1-9][0-9]{0,18})")
_MAX_POSITION: Final = 2**63 - 1


def _ignored(path: str) -> bool:
    return (
        path.startswith("__MACOSX/")
        or path in (".DS_Store", SIGNATURE_FILE)
        or path.endswith(("/.DS_Store", "/" + SIGNATURE_FILE))
    )


def hashed_paths(files: Iterable[FileEntry]) -> list[str]:
    """Return the ``path:sha256`` lines the package hash covers, in the devices' order."""
    lines = [f"{f.path}:{f.sha256}" for f in files if not _ignored(f.path)]
    # UTF-16 code-unit order, as Java and JavaScript sort strings.
    return sorted(lines, key=lambda line: line.encode("utf-16-be"))


def package_hash(files: Iterable[FileEntry]) -> str:
    """Return the CodePush package hash of a release with these files (lowercase hex)."""
    # JSON.stringify: no spaces, "/" and non-ASCII characters written as they are.
    text = json.dumps(hashed_paths(files), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label(epoch: int, sequence: int) -> str:
    """Return the CodePush label of the release at ``(epoch, sequence)``."""
    return f"v{sequence}" if epoch == 1 else f"v{epoch}.{sequence}"


def parse_label(text: str) -> tuple[int, int] | None:
    """Return the ``(epoch, sequence)`` a label names, or None if it is not one of ours."""
    match = _LABEL.fullmatch(text)
    if match is None:
        return None
    epoch = int(match[1]) if match[1] else 1
    sequence = int(match[2])
    if (epoch == 1 and match[1]) or epoch > _MAX_POSITION or sequence > _MAX_POSITION:
        return None  # "v1.5" is written "v5": one spelling per position
    return (epoch, sequence)
