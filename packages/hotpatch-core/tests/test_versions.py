from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.errors import VersionSyntaxError
from hotpatch_core.versions import BinaryRange, Version


def test_semver_precedence_follows_the_spec() -> None:
    """Ordering follows semver §11, including pre-release identifiers."""
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    versions = [Version.parse(v) for v in ordered]
    shuffled = [versions[i] for i in (3, 0, 10, 7, 1, 9, 2, 6, 4, 8, 5)]
    assert sorted(shuffled) == versions
    assert Version.parse("1.0.0+build.1") == Version.parse("1.0.0+other")


@pytest.mark.parametrize(
    "text", ["1", "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3.4", "", "1.2.x", " 1.2.3"]
)
def test_invalid_semver_rejected(text: str) -> None:
    """Only full semantic versions parse as release versions."""
    with pytest.raises(VersionSyntaxError):
        Version.parse(text)


@pytest.mark.parametrize(
    "text", ["1\u0663.0.0", "\u0661.0", "1.2.3\n", "1.0\n", "\uff11.0.0", "1.\u00b2.0"]
)
def test_versions_take_ascii_digits_and_nothing_after_them(text: str) -> None:
    """Other scripts' digits and a trailing newline are refused, never read as a version."""
    with pytest.raises(VersionSyntaxError):
        Version.parse(text)
    with pytest.raises(VersionSyntaxError):
        Version.parse_native(text)
    if not text.endswith("\n"):  # in a range, white space separates comparators
        with pytest.raises(VersionSyntaxError):
            BinaryRange.parse(text)


def test_native_versions_accept_store_short_forms() -> None:
    """Native versions may omit minor and patch, as app stores allow."""
    assert Version.parse_native("3") == Version(3, 0, 0)
    assert Version.parse_native("1.2") == Version(1, 2, 0)
    assert Version.parse_native("1.2.3-beta.1") == Version(1, 2, 3, ("beta", "1"))
    with pytest.raises(VersionSyntaxError):
        Version.parse_native("1.2.3.4")


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ("1.2.3", ["1.2.3"], ["1.2.4", "1.2.2"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("1.2.x", ["1.2.0", "1.2.99"], ["1.3.0", "1.1.9"]),
        ("1.2.*", ["1.2.5"], ["1.3.0"]),
        ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("1.x", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
        ("*", ["0.0.0", "99.0.0"], []),
        ("^1.2.0", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.9"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        (">=1.2 <2", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.9"]),
        (">= 1.2 < 2", ["1.5.0"], ["2.0.0"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.9"], ["1.5.0", "1.1.0"]),
        ("1.x || >=3", ["1.5.0", "3.0.0"], ["2.0.0"]),
    ],
)
def test_binary_ranges_match_npm_semantics(
    spec: str, inside: list[str], outside: list[str]
) -> None:
    """Each range form contains exactly the native versions npm would say."""
    parsed = BinaryRange.parse(spec)
    for text in inside:
        assert parsed.contains(Version.parse(text)), (spec, text)
    for text in outside:
        assert not parsed.contains(Version.parse(text)), (spec, text)


@pytest.mark.parametrize("spec", ["", "  ", "1.2 ||", "abc", ">=", "1 - ", "1.2.3 - 2 - 3", "^^1"])
def test_invalid_ranges_rejected(spec: str) -> None:
    """Malformed ranges raise VersionSyntaxError with no partial meaning."""
    with pytest.raises(VersionSyntaxError):
        BinaryRange.parse(spec)


versions = st.builds(
    Version,
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 20),
    st.lists(st.sampled_from(["alpha", "beta", "1", "2", "rc"]), max_size=2).map(tuple),
)


@given(versions)
def test_version_text_round_trip(version: Version) -> None:
    """str() of a version parses back to an equal version."""
    assert Version.parse(str(version)) == version


@given(versions, versions, versions)
def test_version_order_is_total_and_transitive(a: Version, b: Version, c: Version) -> None:
    """Precedence is a total order."""
    assert (a < b) + (a == b) + (a > b) == 1
    if a <= b <= c:
        assert a <= c


@given(st.text(max_size=40))
def test_arbitrary_range_text_raises_only_version_syntax_error(text: str) -> None:
    """Fed any text, range parsing succeeds or raises VersionSyntaxError, nothing else."""
    with contextlib.suppress(VersionSyntaxError):
        BinaryRange.parse(text)
