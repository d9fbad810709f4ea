"""The releases slice: publish, list, show, count, roll out, roll back, promote, archive, patch.

- :mod:`~hotpatch_server.releases.controller`: the ``/releases`` routes (HTTP only);
- :mod:`~hotpatch_server.releases.service`: what they do, callable without HTTP;
- :mod:`~hotpatch_server.releases.upload`: the streaming multipart reader of a publish.
"""
