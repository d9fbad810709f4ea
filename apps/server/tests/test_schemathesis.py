"""Property-based API fuzzing: schemathesis over our own OpenAPI schema, zero 5xx allowed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from hotpatch_core.testing import make_pki
from hotpatch_server.testing import free_port, wait_until_serving

COMMAND = str(Path(sys.executable).with_name("hotpatch-server"))


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server process on loopback with one app and an admin key."""
    data = tmp_path_factory.mktemp("schemathesis")
    env = {**os.environ, "HOTPATCH_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    root = data / "root.json"
    root.write_bytes(make_pki().root_bytes)
    for args in (["create-app", "com.example.app", "--trust-root", str(root), "--create"],):
        subprocess.run([COMMAND, *args], env=env, check=True, capture_output=True, timeout=120)
    created = subprocess.run(
        [COMMAND, "create-key", "--name", "fuzz", "--role", "admin", "--app", "*"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    process = subprocess.Popen(
        [COMMAND, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(f"{base}/health", process)
    yield base, key
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=30)
    assert "Traceback" not in errors, errors


def test_no_server_errors(live_server: tuple[str, str]) -> None:
    """No request the schema allows, authenticated or not, gets a 5xx."""
    base, key = live_server
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    examples = int(os.environ.get("HOTPATCH_FUZZ_EXAMPLES", "25"))
    operations = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"schema error: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def exercise(case: schemathesis.Case[Any]) -> None:
            for headers in ({"Authorization": f"Bearer {key}"}, {}):
                case.call_and_validate(
                    headers=headers,
                    checks=[
                        schemathesis.checks.not_a_server_error,
                        schemathesis.checks.response_schema_conformance,
                    ],
                    timeout=30,
                )

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 20
    assert failures == []
