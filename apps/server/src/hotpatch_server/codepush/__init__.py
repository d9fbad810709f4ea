"""The CodePush device protocol, served from HotPatch's own releases.

Apps built with ``react-native-code-push`` (9.x, with the ``code-push`` 4.x
acquisition SDK) point their ``CodePushServerUrl`` at a HotPatch server and
use a *deployment key* made here: it names one (app, platform, channel).

- :mod:`.keys`: deployment keys (created, listed and revoked by admins;
  stored as sha256) and the per-process lookup the device routes use.
- :mod:`.protocol`: the device routes (update check, deploy and download
  reports). They translate CodePush's query and bodies into HotPatch's
  check and report services (:func:`hotpatch_server.devices.check.choose`,
  :func:`hotpatch_server.devices.reports.record_installation`): the same releases,
  cohorts, binary ranges, exclusions and statistics as HotPatch's own devices.
  The legacy camelCase routes of code-push SDK 2.x (``/updateCheck``,
  ``/reportStatus/...``; react-native-code-push 5.6 and older) are the same
  service with the old spelling.
"""

from hotpatch_server.codepush.keys import DeploymentKeyController, DeploymentKeys
from hotpatch_server.codepush.protocol import CodePushController, LegacyCodePushController

__all__ = [
    "CodePushController",
    "DeploymentKeyController",
    "DeploymentKeys",
    "LegacyCodePushController",
]
