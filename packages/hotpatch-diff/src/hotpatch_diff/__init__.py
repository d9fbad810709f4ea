"""Differential updates for HotPatch (not yet implemented).

This distribution will hold the patch container and per-file bsdiff4 / zstd
patching (see issue "Differential updates"). Until then it exports nothing,
so nothing can mistake it for a working engine.
"""

__all__: list[str] = []
