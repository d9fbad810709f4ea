"""The apps slice: apps, their trust roots, and the bundles their binaries embed.

- :mod:`~hotpatch_server.apps.service`: creating an app and rotating its trust root,
  without HTTP (the ``hotpatch-server`` command uses the same functions);
- :mod:`~hotpatch_server.apps.controller`: the ``/apps`` routes.
"""
