"""HotPatch differential updates: per-file patches verified against signed hashes.

:func:`make_patch` encodes a release relative to an earlier one, per file,
with whichever of keep / zstd / bsdiff (bzip2 or LZMA2 blocks) /
zstd-with-the-old-file-as-dictionary / HDiffPatch is smallest;
:func:`apply_patch` rebuilds the new release's files, capped at and checked
against the signed target manifest. :func:`read_header` reads a
patch's base and target ids; :func:`embedded_id` names the bundle shipped in
an app binary so it can be a patch base. See :mod:`hotpatch_diff.patch`.
"""

from hotpatch_diff.embedded import embedded_id
from hotpatch_diff.patch import (
    Op,
    PatchFormatError,
    PatchSide,
    PatchStats,
    WrongBaseError,
    apply_patch,
    make_patch,
    read_header,
)

__all__ = [
    "Op",
    "PatchFormatError",
    "PatchSide",
    "PatchStats",
    "WrongBaseError",
    "apply_patch",
    "embedded_id",
    "make_patch",
    "read_header",
]
