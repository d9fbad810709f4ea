"""The HotPatch reference server (not yet implemented).

This distribution will hold the Litestar application factory
``create_app(settings)``. Until then it exports nothing and installs no
console script.
"""

__all__: list[str] = []
