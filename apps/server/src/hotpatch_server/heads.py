"""Channel heads: the signed "as of now" that comes with every update check answer.

The server holds the timestamp key (``HOTPATCH_TIMESTAMP_KEY_FILE``), which an
app's trust root may certify for freshness only (docs/spec/head.md). For
each (app, platform, channel) and each point a device can start from, it
signs a head listing the releases it may offer newer than that point, from
the same cached candidates the check chooses from, so a head never
contradicts the answer it comes with.

Heads are signed lazily and kept: one is signed again only when the
channel's releases change (a publish, a rollout change, a pause) or every
:data:`REFRESH` seconds, so a device that checks again soon after sees a
newer head, and several processes never sign heads far apart in time.
Signing costs about one Ed25519 signature per channel and minute.

Clock jumps (docs/reliability.md): a device refuses a head older than the
newest it has seen (less two minutes), so a head's ``issued_at`` never goes
back in this process: after the server's clock jumps back, heads keep the
newest time this process signed at (and are not refreshed until the clock
catches up, unless the channel changes). The floor is not yet kept across a
restart: a process started after its clock was set back by more than two
minutes signs heads that devices which saw the later ones refuse until the
clock catches up (they keep running what they have).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from hotpatch_core.head import ChannelHead, HeadRelease, Position, sign_head
from hotpatch_core.keys import SigningKey
from hotpatch_server.cache import Candidate

__all__ = ["REFRESH", "ChannelHeads"]

#: The oldest a served head may be, in seconds (well inside HEAD_TOLERANCE).
REFRESH: Final = 60.0
#: Heads kept at most (channels x starting points); past it, the store starts over.
_MAX_HEADS: Final = 50_000

_Key = tuple[str, str, str, tuple[int, int] | None]
_Content = tuple[tuple[str, int, int, str, int, bool], ...]


def _content(candidates: Sequence[Candidate]) -> _Content:
    return tuple(
        (c.manifest_id, c.epoch, c.sequence, c.binary_range.text, c.rollout_basis_points, c.paused)
        for c in candidates
    )


class ChannelHeads:
    """Signs and keeps the channel heads of this process (see the module docstring)."""

    def __init__(self, key: SigningKey, lifetime: float) -> None:
        """Sign with ``key``; each head is valid for ``lifetime`` seconds after it is signed."""
        self._key = key
        self._lifetime = timedelta(seconds=lifetime)
        # By channel and starting point: (the candidates object, its content, issued, base64).
        self._heads: dict[_Key, tuple[object, _Content, datetime, str]] = {}
        #: The newest ``issued_at`` signed here; no head is signed earlier (clock jumps).
        self.floor: datetime | None = None

    def head(
        self,
        target: tuple[str, str, str],
        candidates: tuple[Candidate, ...],
        after: tuple[int, int] | None,
        now: datetime,
    ) -> str:
        """Return the base64 head of ``target`` listing ``candidates`` newer than ``after``."""
        key = (*target, after)
        kept = self._heads.get(key)
        content = None
        if kept is not None:
            source, kept_content, issued, encoded = kept
            if now - issued < timedelta(seconds=REFRESH):  # negative: the clock went back
                if source is candidates:
                    return encoded
                content = _content(candidates)  # reloaded: compare once per reload
                if content == kept_content:
                    self._heads[key] = (candidates, content, issued, encoded)
                    return encoded
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        issued = now if self.floor is None or now > self.floor else self.floor
        self.floor = issued
        encoded = self._sign(target, candidates, after, issued)
        if content is None:
            content = _content(candidates)
        self._heads[key] = (candidates, content, issued, encoded)
        return encoded

    def _sign(
        self,
        target: tuple[str, str, str],
        candidates: tuple[Candidate, ...],
        after: tuple[int, int] | None,
        now: datetime,
    ) -> str:
        listed = tuple(
            HeadRelease(
                c.manifest_id,
                c.epoch,
                c.sequence,
                c.binary_range.text,
                c.rollout_basis_points,
                c.paused,
            )
            for c in candidates
            if after is None or c.position > after
        )
        head = ChannelHead(
            app_id=target[0],
            platform=target[1],
            channel=target[2],
            issued_at=now,
            expires_at=now + self._lifetime,
            releases=listed,
            after=Position(*after) if after is not None else None,
        )
        return base64.b64encode(sign_head(head, [self._key])).decode("ascii")
