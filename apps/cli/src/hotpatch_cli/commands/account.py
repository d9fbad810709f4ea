"""``hotpatch login``: check an endpoint and a token, then keep them."""

from __future__ import annotations

import argparse

from hotpatch_cli.config import save_login
from hotpatch_cli.context import Context

__all__ = ["login"]


def login(ctx: Context, _args: argparse.Namespace) -> None:
    """Check the endpoint and token against the server, then store them (0600)."""
    s = ctx.settings
    api_url = s.api_url or ctx.ask("API endpoint (e.g. https://updates.example.com): ")
    token = s.token or ctx.ask("API token: ", secret=True)
    with ctx.connect(api_url, token) as api:
        api.check_credentials(s.app)
    path = save_login(s.home, api_url=api_url, token=token, app=s.app)
    ctx.output.result(
        {"apiUrl": api_url, "app": s.app, "config": str(path)},
        f"logged in to {api_url}{f' for {s.app}' if s.app else ''}; saved to {path}",
    )
