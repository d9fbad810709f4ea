"""The devices slice: what devices call, and what the server keeps about them.

The update check does no write on its critical path: the device's last-seen
data goes into an in-memory buffer (:class:`DeviceTracker`) flushed in
batches, and the candidate releases, with the devices that rolled each one
back, come from :class:`~hotpatch_server.cache.ActiveReleases`. The check
reads no database unless its (app, platform, channel) was just invalidated.

Choosing: among the channel's active releases, newest first, the first that
is not paused, whose binary range contains the device's native version, is
newer than what the device runs, has the device inside its rollout cohort
(salt: the release's manifest id, ADR 0001), and was not reported rolled
back by this device. Cohorts are advisory: they only choose among releases
already signed for the channel (docs/security.md A18, S9).

- :mod:`~hotpatch_server.devices.query`: an update check's parameters, validated;
- :mod:`~hotpatch_server.devices.check`: the choice of a release (without HTTP) and the
  check service on the hot path;
- :mod:`~hotpatch_server.devices.tracker`: device check-ins, buffered and written in batches;
- :mod:`~hotpatch_server.devices.reports`: installation reports, stored once;
- :mod:`~hotpatch_server.devices.controller`: the routes devices call.

Other device protocols (:mod:`hotpatch_server.codepush`, :mod:`hotpatch_server.expo`)
are slices beside this one over the same query, choice and reports.
"""
