"""The ``hotpatch`` command (not yet implemented).

This distribution will hold the CLI that builds, signs and publishes
releases over HTTP. Until then it exports nothing and installs no command.
"""

__all__: list[str] = []
