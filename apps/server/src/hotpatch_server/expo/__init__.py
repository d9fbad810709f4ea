"""The Expo Updates protocol (v1), served from HotPatch's own releases.

Apps built with ``expo-updates`` point ``updates.url`` at
``<public URL>/expo/<app id>/manifest``. A release is served to them once
its publisher attached an Expo manifest to it (``hotpatch release
--expo-export``, or ``hotpatch expo attach``).

- :mod:`.publish` (routes) and :mod:`.service`: attaching a release's Expo
  manifest (computed from the signed release, checked and optionally
  RSA-signed by the publisher's CLI; the server never holds the key), and
  roll-back directives.
- :mod:`.protocol`: the device routes (manifest and assets), translated
  into HotPatch's check and report services: the same releases, cohorts,
  exclusions and statistics as HotPatch's own devices.
"""

from hotpatch_server.expo.protocol import ExpoController, ExpoService, manifest_route
from hotpatch_server.expo.publish import ExpoDirectiveController, ExpoReleaseController

__all__ = [
    "ExpoController",
    "ExpoDirectiveController",
    "ExpoReleaseController",
    "ExpoService",
    "manifest_route",
]
