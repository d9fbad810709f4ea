"""``hotpatch-server``: run the server and bootstrap it without a database shell.

Commands::

    hotpatch-server [serve]                     run (embedded default: SQLite + local disk)
    hotpatch-server migrate                     apply schema migrations
    hotpatch-server create-app ID --trust-root FILE [--name NAME] [--create]
    hotpatch-server rotate-trust-root ID --trust-root FILE
    hotpatch-server create-key --name NAME --role ROLE --app ID [--app ID ...] [--expires-days N]
                               [--create]
    hotpatch-server list-keys
    hotpatch-server revoke-key KEY_ID
    hotpatch-server timestamp-key [--out FILE]  the public key that signs channel heads
    hotpatch-server cleanup [--grace-hours H] [--dry-run]
                                                remove blobs nothing references (after a crash)

Settings come from the environment (see :mod:`hotpatch_server.settings`).
Admin commands work on an existing database (the one ``serve`` made in this
folder's ``./hotpatch-data``, or ``HOTPATCH_DATA_DIR`` / ``DATABASE_URL``);
``--create`` lets ``create-app`` and ``create-key`` start a new one. Errors
print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from hotpatch_core.errors import HotPatchError
from hotpatch_server import fields
from hotpatch_server.apps.service import add_app, rotate_root
from hotpatch_server.audit import record_key_change
from hotpatch_server.auth import Role, create_api_key
from hotpatch_server.migrate import upgrade
from hotpatch_server.models import ApiKey, App
from hotpatch_server.problems import Problem, problem_for
from hotpatch_server.settings import ConfigurationError, Settings
from hotpatch_server.storage.cleanup import CleanupReport

__all__ = ["main"]

T = TypeVar("T")
ACTOR = "hotpatch-server (local admin)"


class AdminError(Exception):
    """A bootstrap command cannot do what was asked."""


def _run(settings: Settings, work: Callable[[AsyncSession, datetime], Awaitable[T]]) -> T:
    upgrade(settings.database_url)

    async def go() -> T:
        engine = create_async_engine(settings.database_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                result = await work(session, datetime.now(UTC))
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _require_database(env: dict[str, str], args: argparse.Namespace) -> None:
    """Refuse to start a new database by accident (a command run from another folder).

    The embedded default keeps its database in ``./hotpatch-data`` of the
    current folder: an admin command run elsewhere would silently make an
    empty one there. Commands that may start one take ``--create``.
    """
    if getattr(args, "create", False):
        return
    sqlite = Settings.sqlite_file(env)
    if sqlite is not None and not sqlite.is_file():
        raise AdminError(
            f"no HotPatch database at {sqlite}: run this command from the folder where "
            "hotpatch-server runs, or set HOTPATCH_DATA_DIR (or DATABASE_URL) to its data"
            + (
                "; pass --create to start a new database there"
                if hasattr(args, "create")
                else "; hotpatch-server migrate creates a new one"
            )
        )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc.strerror}") from None


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from hotpatch_server.app import create_app  # noqa: PLC0415 - keeps admin commands light
    from hotpatch_server.serving import serve  # noqa: PLC0415 - only this command needs uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    print(f"HotPatch server on http://{host}:{port}  (data: {settings.data_dir})")  # noqa: T201
    print(f"database: {settings.database_url.split('@')[-1]}")  # noqa: T201
    print(f"API schema: http://{host}:{port}/schema\n")  # noqa: T201
    print("\n".join(first_steps(settings, f"http://{host}:{port}")), flush=True)  # noqa: T201
    serve(create_app(settings), settings, host, port)
    return 0


def _command(name: str) -> str | None:
    """How to call console script ``name`` from any folder (its name if PATH finds it), or None.

    A script installed beside this one but not on PATH is named by its path.
    """
    beside = Path(sys.argv[0]).resolve().with_name(name)
    found = shutil.which(name)
    if found is not None and (not beside.is_file() or Path(found).resolve() == beside):
        return name
    return shlex.quote(str(beside)) if beside.is_file() else None


def first_steps(settings: Settings, url: str, app_id: str = "com.example.app") -> list[str]:
    """Return the commands that take a new server to a first publish, in order, ready to paste.

    They name the data this server uses, so they work from any folder, and the
    commands as this machine can run them (``hotpatch`` is the CLI).
    """
    server = _command("hotpatch-server") or "hotpatch-server"
    installed_cli = _command("hotpatch")
    cli = installed_cli or "hotpatch"
    if settings.embedded:
        server = f"HOTPATCH_DATA_DIR={shlex.quote(str(settings.data_dir))} {server}"
    stamp = settings.timestamp_key is not None
    steps = [
        "First steps (in another terminal; docs/quickstart.md explains each one):",
        "  1. keys and the trust root your app embeds (keep root.pem offline):",
        f"     {cli} keys generate --root --out root.pem",
        f"     {cli} keys generate --scope-app {app_id}",
        f"     {cli} keys export-public --out publisher.pub",
        *([f"     {server} timestamp-key --out timestamp.pub"] if stamp else []),
        (
            f"     {cli} trust-root create --root-key root.pem --publisher publisher.pub:ci "
            f"--scope-app {app_id}"
            + (" --timestamp-key timestamp.pub" if stamp else "")
            + " --out trust-root.json"
        ),
        "  2. the app on this server, and an API key to publish with"
        + ("" if settings.embedded else " (with this server's DATABASE_URL and JWT_SECRET)")
        + ":",
        f"     {server} create-app {app_id} --trust-root trust-root.json",
        f"     {server} create-key --name ci --role publisher --app {app_id}",
        "  3. in your React Native app's folder, log in with that key (it prompts) and publish:",
        f"     {cli} login --api-url {url} --app {app_id}",
        f"     {cli} release --platform android --version 1.0.1",
    ]
    if installed_cli is None:
        steps.insert(1, "  0. install the hotpatch command: see docs/install.md")
    return steps


def _timestamp_key(settings: Settings, args: argparse.Namespace) -> int:
    """Print (or write) the public half of the key that signs channel heads."""
    if settings.timestamp_key is None:
        raise AdminError(
            "this server has no timestamp key: set HOTPATCH_TIMESTAMP_KEY_FILE to an Ed25519 "
            "private key (`hotpatch keys generate --out timestamp.pem`)"
        )
    pem = settings.timestamp_key.public_key.to_pem()
    if args.out is None:
        sys.stdout.write(pem.decode("ascii"))
        return 0
    try:
        Path(args.out).write_bytes(pem)
    except OSError as exc:
        raise AdminError(f"cannot write {args.out}: {exc.strerror}") from None
    print(  # noqa: T201
        f"wrote the timestamp public key (id {settings.timestamp_key.key_id}) to {args.out}"
    )
    return 0


def _grace_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or hours < 0:
        msg = f"{text!r} is not a number of hours (0 or more)"
        raise argparse.ArgumentTypeError(msg)
    return hours


def _cleanup(settings: Settings, args: argparse.Namespace) -> int:
    """Remove unreferenced blobs and upload leftovers older than the grace period."""
    from hotpatch_server.app import blob_store_for  # noqa: PLC0415 - keeps other commands light
    from hotpatch_server.storage.cleanup import clean_up  # noqa: PLC0415 - as above

    async def go() -> CleanupReport:
        engine = create_async_engine(settings.database_url)
        try:
            return await clean_up(
                sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
                store=blob_store_for(settings),
                temporary=settings.data_dir / "tmp",
                grace=timedelta(hours=args.grace_hours),
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    verb = "would remove" if args.dry_run else "removed"
    print(  # noqa: T201
        f"{report.blobs} blobs stored; {len(report.unreferenced)} referenced by nothing and "
        f"older than {args.grace_hours:g} h: {verb} {len(report.unreferenced)}; "
        f"{verb} {len(report.temporary_files)} upload leftovers"
    )
    for sha256 in report.unreferenced:
        print(f"  {verb} blob {sha256}")  # noqa: T201
    return 0


def _create_app(settings: Settings, args: argparse.Namespace) -> int:
    envelope = _read(args.trust_root)

    async def work(session: AsyncSession, now: datetime) -> App:
        return await add_app(
            session, args.id, args.name or "", envelope, ACTOR, now, settings.timestamp_key
        )

    app = _run(settings, work)
    print(f"created app {app.id} (trust root v{app.trust_root_version})")  # noqa: T201
    return 0


def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    envelope = _read(args.trust_root)

    async def work(session: AsyncSession, now: datetime) -> int:
        app = await rotate_root(session, args.id, envelope, ACTOR, now, settings.timestamp_key)
        return app.trust_root_version

    version = _run(settings, work)
    print(f"app {args.id} now trusts root v{version}")  # noqa: T201
    return 0


def _create_key(settings: Settings, args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, now: datetime) -> tuple[ApiKey, str]:
        fields.display_name(args.name, "--name")
        fields.app_scope(args.app, "--app")
        for app_id in args.app:
            if app_id != "*" and await session.get(App, app_id) is None:
                raise AdminError(f"no app {app_id!r}; create it first")
        expires = now + timedelta(days=args.expires_days) if args.expires_days else None
        row, plaintext = await create_api_key(
            session,
            name=args.name,
            role=Role(args.role),
            apps=args.app,
            now=now,
            expires_at=expires,
        )
        record_key_change(session, ACTOR, "create-key", row, now)
        return row, plaintext

    row, plaintext = _run(settings, work)
    print(f"key {row.id} ({row.role} for {', '.join(row.apps)}); shown once, store it now:")  # noqa: T201
    print(plaintext)  # noqa: T201
    return 0


def _list_keys(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _now: datetime) -> list[ApiKey]:
        return list(
            (await session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).scalars()
        )

    for row in _run(settings, work):
        state = "revoked" if row.revoked_at else "active"
        print(f"{row.id}  {row.role:<9}  {state:<7}  {','.join(row.apps):<30}  {row.name}")  # noqa: T201
    return 0


def _revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, now: datetime) -> None:
        row = await session.get(ApiKey, args.key_id)
        if row is None:
            raise AdminError(f"no key {args.key_id!r}")
        row.revoked_at = row.revoked_at or now
        record_key_change(session, ACTOR, "revoke-key", row, now)

    _run(settings, work)
    print(f"revoked key {args.key_id}")  # noqa: T201
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade(settings.database_url)
    print("database schema is up to date")  # noqa: T201
    return 0


_CREATE_HELP = "start a new database if there is none (otherwise the command refuses)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotpatch-server", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)
    commands.add_parser("migrate", help="apply schema migrations").set_defaults(handler=_migrate)
    create = commands.add_parser("create-app", help="create an app with its trust root")
    create.add_argument("id")
    create.add_argument("--trust-root", required=True, help="signed trust root envelope file")
    create.add_argument("--name")
    create.add_argument("--create", action="store_true", help=_CREATE_HELP)
    create.set_defaults(handler=_create_app)
    rotate = commands.add_parser("rotate-trust-root", help="install trust root N+1")
    rotate.add_argument("id")
    rotate.add_argument("--trust-root", required=True)
    rotate.set_defaults(handler=_rotate)
    key = commands.add_parser("create-key", help="create an API key")
    key.add_argument("--name", required=True)
    key.add_argument("--role", required=True, choices=[r.value for r in Role])
    key.add_argument("--app", action="append", required=True, help="app id, or '*' (repeatable)")
    key.add_argument("--expires-days", type=int)
    key.add_argument("--create", action="store_true", help=_CREATE_HELP)
    key.set_defaults(handler=_create_key)
    commands.add_parser("list-keys", help="list API keys").set_defaults(handler=_list_keys)
    cleanup = commands.add_parser(
        "cleanup",
        help="remove stored blobs no release references, and upload leftovers (after a crash)",
    )
    cleanup.add_argument(
        "--grace-hours",
        type=_grace_hours,
        default=1.0,
        help="leave what is younger than this alone: a publish in flight (default 1)",
    )
    cleanup.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    cleanup.set_defaults(handler=_cleanup)
    stamp = commands.add_parser(
        "timestamp-key",
        help="print the public key that signs channel heads, for the trust root",
    )
    stamp.add_argument("--out", help="write it to this file (default: standard output)")
    stamp.set_defaults(handler=_timestamp_key)
    revoke = commands.add_parser("revoke-key", help="revoke an API key")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_revoke_key)
    return parser


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Entry point of the ``hotpatch-server`` command."""
    args = _parser().parse_args(argv)
    handler: Callable[[Settings, argparse.Namespace], int] = getattr(args, "handler", _serve)
    if not hasattr(args, "host"):
        args.host, args.port = None, None
    environment = dict(os.environ) if env is None else env
    try:
        if handler not in {_serve, _migrate, _timestamp_key}:
            _require_database(environment, args)
        settings = Settings.from_env(environment)
        return handler(settings, args)
    except (ConfigurationError, AdminError) as exc:
        print(f"hotpatch-server: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except (Problem, HotPatchError) as exc:  # the services' errors, the store's, the disk's
        problem = exc if isinstance(exc, Problem) else problem_for(exc)
        where = f" ({problem.field})" if problem.field else ""
        print(f"hotpatch-server: {problem.detail}{where}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
