"""Semantic versions and npm-style binary-compatibility ranges.

A release's *version* is a semantic version label (``1.2.0``,
``1.2.0-beta.1``). Its *binary range* says which native app builds can run the
bundle, in the npm range syntax React Native teams already know:

==================  ====================================
``1.2.3``           exactly 1.2.3 (also ``=1.2.3``)
``1.2.x``, ``1.2``  >=1.2.0 <1.3.0 (``*`` and ``X`` work too)
``^1.2.0``          >=1.2.0 <2.0.0 (``^0.2.3``: <0.3.0)
``~1.2``            >=1.2.0 <1.3.0 (``~1``: <2.0.0)
``>=1.2 <2``        both comparators must hold
``1.2 - 1.4``       >=1.2.0 <=1.4.x
``1.x || >=3``      either side
==================  ====================================

Unlike npm, a pre-release native version is compared by plain semver
precedence and not excluded from ranges: native binaries rarely carry
pre-release tags, and when they do, the publisher means them to match.
"""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Final

import attrs

from hotpatch_core.errors import VersionSyntaxError

__all__ = ["BinaryRange", "Version"]

_NUM = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER: Final = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?\Z"
)
_NATIVE: Final = re.compile(
    rf"^(?P<major>{_NUM})(?:\.(?P<minor>{_NUM}))?(?:\.(?P<patch>{_NUM}))?\Z"
)
_MAX_TEXT = 256
_MAX_COMPONENT = 2**53 - 1  # exact in JavaScript, so native SDKs agree


def _component(text: str, source: str) -> int:
    value = int(text)
    if value > _MAX_COMPONENT:
        raise VersionSyntaxError(f"version component too large in {source!r}")
    return value


@total_ordering
@attrs.frozen(eq=False)
class Version:
    """A semantic version (semver 2.0.0), ordered by semver precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a full semantic version such as ``1.2.0`` or ``2.0.0-rc.1+42``."""
        if len(text) > _MAX_TEXT:
            raise VersionSyntaxError("version string longer than 256 characters")
        match = _SEMVER.match(text)
        if match is None:
            raise VersionSyntaxError(f"{text!r} is not a semantic version like 1.2.0")
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        for ident in pre:
            if ident.isdigit() and len(ident) > 1 and ident.startswith("0"):
                raise VersionSyntaxError(f"numeric pre-release part with leading zero in {text!r}")
        return cls(
            _component(match["major"], text),
            _component(match["minor"], text),
            _component(match["patch"], text),
            pre,
            tuple(match["build"].split(".")) if match["build"] else (),
        )

    @classmethod
    def parse_native(cls, text: str) -> Version:
        """Parse a native app version, accepting the short forms stores allow (``1.2`` = 1.2.0).

        Full semantic versions are accepted too.
        """
        match = _NATIVE.match(text) if len(text) <= _MAX_TEXT else None
        if match is None:
            return cls.parse(text)
        return cls(
            _component(match["major"], text),
            _component(match["minor"] or "0", text),
            _component(match["patch"] or "0", text),
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A version without pre-release sorts after all its pre-releases;
        # numeric identifiers sort before alphanumeric ones (semver §11).
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


# A comparator is (operator, version); a range is an OR of ANDs of comparators.
_Comparator = tuple[str, Version]
_PARTIAL: Final = re.compile(
    r"^v?(?P<major>[0-9]+|[xX*])(?:\.(?P<minor>[0-9]+|[xX*]))?(?:\.(?P<patch>[0-9]+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\Z"
)
_OPERATOR: Final = re.compile(r"^(?P<op><=|>=|<|>|=|\^|~>?)?\s*(?P<rest>.*)\Z")
_WILD = ("x", "X", "*")


def _partial(text: str, source: str) -> tuple[int | None, int | None, int | None, tuple[str, ...]]:
    match = _PARTIAL.match(text)
    if match is None:
        raise VersionSyntaxError(f"{text!r} in range {source!r} is not a version")
    parts: list[int | None] = []
    wild = False
    for name in ("major", "minor", "patch"):
        value = match[name]
        if value is None or value in _WILD or wild:
            wild = True
            parts.append(None)
        else:
            parts.append(_component(value, source))
    pre = tuple(match["pre"].split(".")) if match["pre"] and not wild else ()
    return parts[0], parts[1], parts[2], pre


def _desugar(op: str, text: str, source: str) -> list[_Comparator]:  # noqa: PLR0911, PLR0912 - one flat case per operator reads best
    major, minor, patch, pre = _partial(text, source)
    if major is None:
        return [] if op in ("", "=", ">=", "<=", "^", "~", "~>") else [("<", Version(0, 0, 0))]
    lo = Version(major, minor or 0, patch or 0, pre)
    if op in ("", "="):
        if minor is None:
            return [(">=", lo), ("<", Version(major + 1, 0, 0))]
        if patch is None:
            return [(">=", lo), ("<", Version(major, minor + 1, 0))]
        return [("=", lo)]
    if op in ("~", "~>"):
        upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [(">=", lo), ("<", upper)]
    if op == "^":
        if major > 0 or minor is None:
            upper = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            upper = Version(0, minor + 1, 0)
        else:
            upper = Version(0, 0, (patch or 0) + 1)
        return [(">=", lo), ("<", upper)]
    if op == ">":
        if minor is None:
            return [(">=", Version(major + 1, 0, 0))]
        if patch is None:
            return [(">=", Version(major, minor + 1, 0))]
        return [(">", lo)]
    if op == "<=":
        if minor is None:
            return [("<", Version(major + 1, 0, 0))]
        if patch is None:
            return [("<", Version(major, minor + 1, 0))]
        return [("<=", lo)]
    return [(op, lo)]  # ">=" and "<" take the zero-filled bound as it is


def _hyphen(left: str, right: str, source: str) -> list[_Comparator]:
    lower = _desugar(">=", left, source)
    upper = _desugar("<=", right, source)
    return lower + upper


def _conjunction(text: str, source: str) -> list[_Comparator]:
    tokens = text.split()
    if len(tokens) == 3 and tokens[1] == "-":
        return _hyphen(tokens[0], tokens[2], source)
    if "-" in tokens:
        raise VersionSyntaxError(f"misplaced hyphen range in {source!r}")
    comparators: list[_Comparator] = []
    # Operators may be written apart from their version (">= 1.2"): join them.
    merged: list[str] = []
    for token in tokens:
        if merged and merged[-1] in ("<", "<=", ">", ">=", "=", "^", "~", "~>"):
            merged[-1] += token
        else:
            merged.append(token)
    for token in merged:
        match = _OPERATOR.match(token)
        if match is None or not match["rest"]:
            raise VersionSyntaxError(f"{token!r} in range {source!r} is not a comparator")
        comparators.extend(_desugar(match["op"] or "", match["rest"], source))
    return comparators


def _holds(comparator: _Comparator, version: Version) -> bool:
    op, bound = comparator
    if op == "=":
        return version == bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    return version < bound


@attrs.frozen
class BinaryRange:
    """Which native app versions can run a bundle, parsed from npm range syntax."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...] = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str) -> BinaryRange:
        """Parse a range such as ``1.2.x``, ``^1.2.0`` or ``>=1.2 <2 || 3.0.1``."""
        if len(text) > _MAX_TEXT:
            raise VersionSyntaxError("range string longer than 256 characters")
        if not text.strip():
            raise VersionSyntaxError("empty binary range; use '*' to match every native version")
        alternatives = tuple(tuple(_conjunction(part.strip(), text)) for part in text.split("||"))
        if any(not part.strip() for part in text.split("||")):
            raise VersionSyntaxError(f"empty alternative in range {text!r}")
        return cls(text, alternatives)

    def contains(self, version: Version) -> bool:
        """Return whether ``version`` satisfies the range."""
        return any(all(_holds(c, version) for c in alt) for alt in self.alternatives)

    def above(self, version: Version) -> bool:
        """Return whether every version the range contains is newer than ``version``.

        True when each alternative has a lower bound ``version`` falls short
        of: a binary at ``version`` must be upgraded to run anything in it.
        """
        return all(
            any(
                (op in ("=", ">=") and version < bound) or (op == ">" and version <= bound)
                for op, bound in alt
            )
            for alt in self.alternatives
        )

    def __str__(self) -> str:
        return self.text
