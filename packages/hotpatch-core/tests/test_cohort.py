from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.cohort import (
    BASIS_POINTS,
    bucket,
    in_rollout,
    parse_percent,
    percent_to_basis_points,
)

ids = st.text(min_size=1, max_size=64)
salts = st.text(max_size=64)
basis_points = st.integers(0, BASIS_POINTS)


@given(ids, salts)
def test_bucket_is_deterministic_and_in_range(device_id: str, salt: str) -> None:
    """The same inputs always give the same bucket in 0..9999."""
    value = bucket(device_id, salt)
    assert 0 <= value < BASIS_POINTS
    assert bucket(device_id, salt) == value


def test_bucket_is_stable_across_processes() -> None:
    """Buckets do not depend on PYTHONHASHSEED (never Python's hash())."""
    code = (
        "import json; from hotpatch_core.cohort import bucket; "
        "print(json.dumps([bucket(f'device-{i}', 'salt') for i in range(200)]))"
    )
    results = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, check=True, text=True
        )
        results.append(json.loads(out.stdout))
    assert results[0] == results[1] == [bucket(f"device-{i}", "salt") for i in range(200)]


@given(ids, salts, basis_points, basis_points)
def test_rollout_is_monotone(device_id: str, salt: str, p: int, q: int) -> None:
    """Widening a rollout never removes a device."""
    low, high = sorted((p, q))
    value = bucket(device_id, salt)
    if in_rollout(value, low):
        assert in_rollout(value, high)


@given(ids, salts)
def test_zero_is_nobody_and_full_is_everybody(device_id: str, salt: str) -> None:
    """0 basis points includes no device and 10000 includes every device."""
    value = bucket(device_id, salt)
    assert not in_rollout(value, 0)
    assert in_rollout(value, BASIS_POINTS)


def test_buckets_are_roughly_uniform() -> None:
    """Chi-square over 100,000 fixed ids in 10 bins stays under the p=0.001 critical value."""
    bins = [0] * 10
    for i in range(100_000):
        bins[bucket(f"device-{i:06d}", "release-salt") // 1000] += 1
    expected = 10_000
    chi_square = sum((count - expected) ** 2 / expected for count in bins)
    assert chi_square < 27.88  # 9 degrees of freedom, p = 0.001


def test_salt_changes_the_assignment() -> None:
    """Different salts put the same devices in different buckets."""
    first = [bucket(f"device-{i}", "release-a") for i in range(1000)]
    second = [bucket(f"device-{i}", "release-b") for i in range(1000)]
    assert sum(a == b for a, b in zip(first, second, strict=True)) < 20


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (5, 500), (12.34, 1234), (100, 10_000)])
def test_percent_to_basis_points(percent: float, expected: int) -> None:
    """Percentages convert to basis points with two decimals kept."""
    assert percent_to_basis_points(percent) == expected


@pytest.mark.parametrize(("value", "points"), [(-1, 0), (10_000, 0), (0, -1), (0, 10_001)])
def test_out_of_range_arguments_rejected(value: int, points: int) -> None:
    """Buckets and rollouts outside their ranges are programming errors."""
    with pytest.raises(ValueError, match="must be"):
        in_rollout(value, points)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percent_to_basis_points(101)


@given(st.floats(min_value=0, max_value=100))
def test_a_percentage_written_as_the_cli_writes_it_parses(percent: float) -> None:
    """Every percentage the CLI sends (``f"{p:g}"``) reads back as its basis points."""
    assert parse_percent(f"{percent:g}") == percent_to_basis_points(float(f"{percent:g}"))


@pytest.mark.parametrize(
    "text",
    ["", " 5", "5 ", "+5", "-0", "5_0", "\u0665\u0660", "nan", "inf", "0x10", "100.5", "1e3"],
)
def test_a_percentage_is_ascii_decimal_text_within_range(text: str) -> None:
    """Text float() would take (spaces, underscores, other scripts' digits, nan) is refused."""
    with pytest.raises(ValueError, match="rollout percentage"):
        parse_percent(text)
