"""The ``hotpatch`` command: keys, trust roots, builds, releases, rollouts and rollbacks.

The command's entry point is :func:`hotpatch_cli.main.main`; it talks to the
server over HTTP only (:mod:`hotpatch_cli.api`). The package exports no
library API: use the command, or ``hotpatch_core`` and ``hotpatch_diff``.
"""

__all__: list[str] = []
