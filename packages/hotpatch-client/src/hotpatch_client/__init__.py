"""HotPatch device agent: the reference implementation of the device protocol.

:class:`Agent` is what a native SDK does, in Python: pick the bundle at
launch, confirm it when the app is ready, check, download, verify and stage
updates, revert a crashing one, and report what happened. See
``docs/integrating-device.md`` and ``docs/spec/device-protocol.md``.
"""

from hotpatch_client.agent import (
    Agent,
    AgentConfig,
    Clock,
    Progress,
    SyncResult,
    SyncStatus,
    SystemClock,
    UpdateInfo,
)
from hotpatch_client.errors import (
    AgentError,
    AgentLockedError,
    NetworkError,
    SlowDownloadError,
    StorageError,
)
from hotpatch_client.fs import FileSystem, OsFileSystem
from hotpatch_client.http import device_http_client
from hotpatch_client.limits import DeviceLimits
from hotpatch_client.transfer import DownloadPolicy

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentLockedError",
    "Clock",
    "DeviceLimits",
    "DownloadPolicy",
    "FileSystem",
    "NetworkError",
    "OsFileSystem",
    "Progress",
    "SlowDownloadError",
    "StorageError",
    "SyncResult",
    "SyncStatus",
    "SystemClock",
    "UpdateInfo",
    "device_http_client",
]
