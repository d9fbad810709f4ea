from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core import strictjson
from hotpatch_core.errors import StrictJSONError


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b'{"a":1.0}',
        b'{"a":1e3}',
        b'{"a":9223372036854775808}',
        b'{"a":-9223372036854775809}',
        b'{"a":' + b"9" * 5000 + b"}",
        b"\xef\xbb\xbf{}",
        b'{"a":"\xff"}',
        b'{"a":"\\ud800"}',
        b"[" * 40 + b"]" * 40,
        b"[" * 100_000,
        b"",
        b"{",
    ],
)
def test_ambiguous_json_rejected(data: bytes) -> None:
    """Anything another parser might read differently is refused (A13)."""
    with pytest.raises(StrictJSONError):
        strictjson.loads(data)


def test_duplicate_json_key_rejected() -> None:
    """A duplicate key is an error, never 'last one wins' (A13)."""
    with pytest.raises(StrictJSONError, match="duplicate key"):
        strictjson.loads(b'{"sequence":1,"nested":{"x":1},"sequence":9}')


def test_int_bounds_are_inclusive() -> None:
    """The signed 64-bit range is accepted to its edges."""
    assert strictjson.loads(b"[9223372036854775807,-9223372036854775808]") == [
        2**63 - 1,
        -(2**63),
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=strictjson.MIN_INT, max_value=strictjson.MAX_INT)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_round_trip(value: object) -> None:
    """canonical() output parses back to the same value, and is a fixed point."""
    encoded = strictjson.canonical(value)
    assert strictjson.loads(encoded) == value
    assert strictjson.canonical(strictjson.loads(encoded)) == encoded
    assert json.loads(encoded) == value


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_strict_json_error(data: bytes) -> None:
    """Fed any bytes, the parser returns a value or raises StrictJSONError, nothing else."""
    with contextlib.suppress(StrictJSONError):
        strictjson.loads(data)
