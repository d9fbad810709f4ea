"""The baseline for the update-check benchmark: a bare Litestar route returning constant JSON."""

from __future__ import annotations

from litestar import Litestar, get


@get("/update/check", sync_to_thread=False)
def check() -> dict[str, bool]:
    """Answer like an up-to-date device's check, doing nothing."""
    return {"updateAvailable": False}


def app() -> Litestar:
    """Build the bare app (an ASGI factory)."""
    return Litestar(route_handlers=[check], openapi_config=None)
