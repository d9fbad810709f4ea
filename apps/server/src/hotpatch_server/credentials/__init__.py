"""The credentials slice: API keys (admin) and the tokens they are exchanged for.

- :mod:`~hotpatch_server.credentials.api_keys`: the ``/keys`` routes;
- :mod:`~hotpatch_server.credentials.tokens`: the ``/auth`` routes.

Authentication itself (checking a key or a token, roles, scopes) is
:mod:`hotpatch_server.auth`.
"""
