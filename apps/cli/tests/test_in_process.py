"""Commands run in-process against the real server app, through the CLI's transport seam.

The subprocess tests (test_workflow.py) are the end-to-end layer; here the
same ``main()`` runs with its requests carried to ``create_app`` in this
process, so a command's decisions can be tested quickly and a server that
breaks the contract can be staged.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from litestar.testing import TestClient
from litestar.testing import transport as litestar_transport

from hotpatch_cli.main import main
from hotpatch_core.manifest import manifest_id
from hotpatch_core.release import decode_release_envelope
from hotpatch_server.testing import APP_ID, Server, in_process_server

BUNDLE = "".join(f"function f{i}(a){{return a+{i}}}\n" for i in range(3000))


class _InProcess(httpx.BaseTransport):
    """Requests served by the app behind a Litestar test client, in this process."""

    def __init__(self, client: TestClient[Any]) -> None:
        self._inner = litestar_transport.TestClientTransport(client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)


@attrs.frozen
class Run:
    """``hotpatch`` in this process, as the server's publisher, over one transport."""

    server: Server
    env: dict[str, str]

    def _main(self, args: list[str], transport: httpx.BaseTransport | None) -> tuple[int, str, str]:
        # Only the command's own output is captured: the server's log handlers
        # keep the stream they were made with.
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args, self.env, transport or _InProcess(self.server.client))
        return code, out.getvalue(), err.getvalue()

    def __call__(self, *args: str, transport: httpx.BaseTransport | None = None) -> Any:
        """Run a command with ``--json``; return its parsed answer, or fail with its error."""
        code, out, err = self._main([*args, "--json"], transport)
        if code != 0:
            pytest.fail(f"hotpatch {' '.join(args)} exited {code}: {err}")
        return json.loads(out)

    def fails(self, *args: str, transport: httpx.BaseTransport | None = None) -> tuple[int, str]:
        """Run a command expected to fail; return its exit code and error line."""
        code, _, err = self._main([*args], transport)
        assert code != 0, f"hotpatch {' '.join(args)} succeeded"
        return code, err


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """The real server app in this process; the CLI holds its publisher key and signing key."""
    with in_process_server(tmp_path / "server", auto_patches=False) as server:
        key = tmp_path / "signing.pem"
        key.write_bytes(server.pki.publisher.to_pem())
        env = {
            "HOTPATCH_HOME": str(tmp_path / "home"),
            "HOME": str(tmp_path / "user"),
            "HOTPATCH_API_URL": "http://testserver.local",
            "HOTPATCH_TOKEN": server.publisher_key,
            "HOTPATCH_APP": APP_ID,
            "HOTPATCH_SIGNING_KEY_FILE": str(key),
        }
        yield Run(server, env)


def _bundle(directory: Path, text: str) -> str:
    directory.mkdir(parents=True)
    (directory / "index.android.bundle").write_text(text)
    return str(directory)


def _release(run: Run, tmp_path: Path, version: str, text: str, *extra: str) -> Any:
    return run(
        "release", "--platform", "android", "--version", version,
        "--bundle-dir", _bundle(tmp_path / version, text), *extra,
    )  # fmt: skip


def test_release_rollout_rollback_and_promote_in_process(run: Run, tmp_path: Path) -> None:
    """Each command's answer is the server's typed view; devices see what the commands did."""
    first = _release(run, tmp_path, "1.0.0", BUNDLE, "--rollout", "25")
    second = _release(run, tmp_path, "1.1.0", BUNDLE.replace("a+17}", "a+71}"))
    assert (first["sequence"], first["rolloutPercent"], second["sequence"]) == (1, 25, 2)
    assert run.server.check()["manifestId"] == second["manifestId"]

    paused = run("rollout", "--platform", "android", "--version", "1.1.0", "--pause")
    assert paused["paused"] is True
    assert run.server.check().get("manifestId") != second["manifestId"]

    back = run("rollback", "--platform", "android", "--version", "1.0.0")
    assert (back["sequence"], back["rollbackOf"]) == (3, first["manifestId"])
    answer = run.server.check()
    assert answer["manifestId"] == back["manifestId"]
    payload = decode_release_envelope(base64.b64decode(answer["manifest"])).payload
    assert manifest_id(payload) == back["manifestId"]

    promoted = run("promote", "--platform", "android", "--version", "1.0.0",
                   "--from", "production", "--to", "beta")  # fmt: skip
    assert (promoted["channel"], promoted["sequence"]) == ("beta", 1)
    listing = run("releases", "list", "--platform", "android")
    assert sorted((r["channel"], r["sequence"], r["version"]) for r in listing) == [
        ("beta", 1, "1.0.0"),
        ("production", 1, "1.0.0"),
        ("production", 2, "1.1.0"),
        ("production", 3, "1.0.0"),
    ]


def test_a_patch_is_made_from_the_signed_archives_only(run: Run, tmp_path: Path) -> None:
    """``hotpatch patch`` refuses a base whose stored archive no longer matches its manifest."""
    first = _release(run, tmp_path, "1.0.0", BUNDLE)
    _release(run, tmp_path, "1.1.0", BUNDLE.replace("a+17}", "a+71}"))
    made = run("patch", "--platform", "android", "--from", "1.0.0", "--to", "1.1.0")
    assert made["size"] < made["archiveSize"]

    _release(run, tmp_path, "1.2.0", BUNDLE.replace("a+18}", "a+81}"))
    (archive,) = (p for p in run.server.settings.data_dir.rglob(first["hash"]) if p.is_file())
    archive.write_bytes(archive.read_bytes().replace(b"PK\x01\x02", b"PK\x01\x03", 1))
    code, err = run.fails("patch", "--platform", "android", "--from", "1.0.0", "--to", "1.2.0")
    assert (code, "does not match its signed manifest" in err) == (4, True), err
    stats = run.server.client.get("/releases/3/stats", headers=run.server.auth()).json()
    assert stats["patches"] == []  # nothing was uploaded


class _Lying(httpx.BaseTransport):
    """The real server app, with one field of every JSON answer replaced."""

    def __init__(self, inner: httpx.BaseTransport, field: str, value: object) -> None:
        self._inner = inner
        self._field = field
        self._value = value

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = json.loads(response.read() or b"null")
        rows = body if isinstance(body, list) else [body]
        for row in rows:
            if isinstance(row, dict) and self._field in row:
                row[self._field] = self._value
        return httpx.Response(response.status_code, json=body)


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequence", "2"), ("manifestId", "0" * 63), ("rolloutPercent", True), ("epoch", None)],
)
def test_an_answer_that_breaks_the_contract_is_a_server_error(
    run: Run, tmp_path: Path, field: str, value: object
) -> None:
    """The CLI reads answers with the server's own documents: a bad field is named, exit 4."""
    _release(run, tmp_path, "1.0.0", BUNDLE)
    lying = _Lying(_InProcess(run.server.client), field, value)
    code, err = run.fails("releases", "list", transport=lying)
    assert (code, field in err, "ReleaseView" in err) == (4, True, True), err


def test_bad_release_flags_are_refused_before_the_server_is_asked(run: Run, tmp_path: Path) -> None:
    """Flags are read into ReleaseArgs first: a bad one costs no request and changes nothing."""
    bundle = _bundle(tmp_path / "b", BUNDLE)
    for flags, words in [
        (("--version", "1.0"), "invalid --version"),
        (("--version", "1.0.0", "--rollout", "101"), "--rollout"),
        (("--version", "1.0.0", "--expo-export", bundle, "--hermes"), "--expo-export"),
    ]:
        code, err = run.fails("release", "--platform", "android", "--bundle-dir", bundle, *flags,
                              transport=httpx.MockTransport(_no_request))  # fmt: skip
        assert (code, words in err) == (1, True), err
    assert run.server.release_rows() == 0


def _no_request(request: httpx.Request) -> httpx.Response:
    msg = f"no request may be made, but {request.method} {request.url} was"
    raise AssertionError(msg)


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (("rollback", "--platform", "android", "--version", "1.0.0", "--rollout", "-1"),
         "--rollout"),
        (("promote", "--platform", "android", "--version", "1.0.0", "--from", "beta",
          "--to", "beta"), "same channel"),
        (("promote", "--platform", "android", "--version", "1.0.0", "--from", "beta",
          "--to", "production", "--rollout", "100.5"), "--rollout"),
        (("rollout", "--platform", "android", "--version", "1.0.0", "--percent", "250"),
         "--percent"),
        (("patch", "--platform", "android", "--from", "1.0.0", "--to", "1.0.0"),
         "same version"),
        (("embedded", "register", "--platform", "ios", "--native-version", "1.0.0\n",
          "--bundle-dir", "nowhere"), "--native-version"),
    ],
)  # fmt: skip
def test_each_command_checks_its_flags_before_the_server_is_asked(
    run: Run, command: tuple[str, ...], words: str
) -> None:
    """Rollback, promote, rollout, patch and embedded read their flags into a typed object first."""
    code, err = run.fails(*command, transport=httpx.MockTransport(_no_request))
    assert (code, words in err) == (1, True), err
    assert run.server.release_rows() == 0


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--threshold", "0"), "--threshold"),
        (("--days", "-5"), "--days"),
        (("--publisher-days", "0"), "--publisher-days"),
        (("--epoch", "0"), "--epoch"),
        (("--out", "EXISTING"), "exists already"),
    ],
)
def test_trust_root_flags_are_checked_before_any_key_is_read(
    run: Run, tmp_path: Path, flags: tuple[str, ...], words: str
) -> None:
    """RootArgs checks numbers and the output file first: nothing is signed or written."""
    existing = tmp_path / "existing.json"
    existing.write_text("keep me")
    out = ("--out", str(tmp_path / "root.json"))
    given = tuple(str(existing) if flag == "EXISTING" else flag for flag in flags)
    code, err = run.fails(
        "trust-root", "create", "--root-key", str(tmp_path / "missing.pem"), *out, *given,
        transport=httpx.MockTransport(_no_request),
    )  # fmt: skip
    assert (code, words in err) == (1, True), err
    assert existing.read_text() == "keep me"
    assert not (tmp_path / "root.json").exists()
