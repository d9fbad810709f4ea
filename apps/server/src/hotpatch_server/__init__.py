"""The HotPatch reference server.

``create_app(settings)`` builds the Litestar application; ``hotpatch-server``
runs it (zero configuration: SQLite + bundles on local disk) and bootstraps
apps, trust roots and API keys.
"""

from hotpatch_server.app import create_app
from hotpatch_server.settings import ConfigurationError, Settings

__all__ = ["ConfigurationError", "Settings", "create_app"]
