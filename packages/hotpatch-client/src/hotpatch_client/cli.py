r"""``hotpatch-client``: run simulated devices against a HotPatch server.

::

    hotpatch-client simulate --server http://127.0.0.1:8080 --app com.example.app \\
        --trust-root trust-root.json --devices 100 --rounds 3

Exit codes: 0 done, 1 usage, 2 bad trust root, 4 server unreachable,
5 every device's sync failed in a round (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import httpx

from hotpatch_client.agent import AgentConfig
from hotpatch_client.http import device_http_client
from hotpatch_client.simulate import EMBEDDED, Fleet, FleetSummary
from hotpatch_core.errors import HotPatchError
from hotpatch_core.manifest import Platform
from hotpatch_core.trust import load_trust_root

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotpatch-client", description="The HotPatch device agent's tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser(
        "simulate",
        help="run N simulated devices against a server",
        description=(
            "Each round every device launches, renders (or crashes before its first "
            "render), and syncs in the background, exactly as an app using the agent does."
        ),
    )
    sim.add_argument("--server", required=True, help="the server's base URL")
    sim.add_argument("--app", required=True, help="the app id")
    sim.add_argument(
        "--trust-root", required=True, type=Path, help="the signed trust root the app embeds"
    )
    sim.add_argument("--platform", choices=[p.value for p in Platform], default="android")
    sim.add_argument("--channel", default="production")
    sim.add_argument("--devices", type=int, default=10, help="how many devices (default 10)")
    sim.add_argument("--rounds", type=int, default=3, help="launch + sync rounds (default 3)")
    sim.add_argument(
        "--native-version",
        action="append",
        default=[],
        help="binary version; repeat to spread devices round-robin (default 1.0.0)",
    )
    sim.add_argument(
        "--crash-version",
        action="append",
        default=[],
        help="a release version whose launches crash before the first render (repeatable)",
    )
    sim.add_argument(
        "--crash-rate", type=float, default=0.0, help="probability any launch crashes (0..1)"
    )
    sim.add_argument("--storage", type=Path, help="keep device storage here (default: temporary)")
    sim.add_argument("--id-prefix", default="sim", help="device ids are PREFIX-00000 ...")
    sim.add_argument("--seed", type=int, default=1, help="seed for crash-rate rolls")
    sim.add_argument("--concurrency", type=int, default=4, help="devices run in parallel")
    sim.add_argument("--json", action="store_true", help="print one JSON summary per round")
    sim.add_argument(
        "--codepush-devices",
        type=int,
        default=0,
        help="how many of the devices are react-native-code-push apps (default 0)",
    )
    sim.add_argument(
        "--deployment-key", help="the CodePush deployment key those apps carry (--platform's)"
    )
    return parser


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fail(text: str, code: int) -> int:
    sys.stderr.write(f"hotpatch-client: {text}\n")
    return code


def _print(summary: FleetSummary, *, as_json: bool) -> None:
    _say(json.dumps(attrs.asdict(summary), sort_keys=True) if as_json else summary.describe())


def _simulate(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit code per failure
    if args.devices < 1 or args.rounds < 1:
        return _fail("--devices and --rounds must be at least 1", 1)
    if not 0 <= args.codepush_devices <= args.devices:
        return _fail("--codepush-devices must be between 0 and --devices", 1)
    if args.codepush_devices and not args.deployment_key:
        return _fail("--codepush-devices needs --deployment-key (hotpatch deployment-keys)", 1)
    try:
        root = load_trust_root(args.trust_root.read_bytes())
    except (OSError, HotPatchError) as exc:
        return _fail(f"cannot use trust root {args.trust_root}: {exc}", 2)
    natives = args.native_version or ["1.0.0"]
    try:
        config = AgentConfig(
            server_url=args.server,
            app_id=args.app,
            platform=Platform(args.platform),
            native_version=natives[0],
            trust_root=root,
            channel=args.channel,
        )
        for native in natives:
            attrs.evolve(config, native_version=native)
    except HotPatchError as exc:
        return _fail(str(exc), 1)
    with device_http_client(timeout=30) as http:
        try:
            http.get(args.server.rstrip("/") + "/health").raise_for_status()
        except httpx.HTTPError as exc:
            return _fail(f"server {args.server} unreachable: {exc}", 4)
        with Fleet(
            config,
            http=http,
            devices=args.devices,
            storage=args.storage,
            native_versions=natives,
            crash_versions=args.crash_version,
            crash_rate=args.crash_rate,
            seed=args.seed,
            id_prefix=args.id_prefix,
            concurrency=args.concurrency,
            codepush_devices=args.codepush_devices,
            deployment_key=args.deployment_key,
        ) as fleet:
            for _ in range(args.rounds):
                summary = fleet.run_round()
                _print(summary, as_json=args.json)
                if summary.all_failed:
                    return _fail(_why_all_failed(summary, args), 5)
                if (
                    summary.round == 1
                    and summary.running == {EMBEDDED: summary.devices}
                    and (summary.staged == 0)
                ):
                    # Not an error (an app may have no release yet), but a likely mistake.
                    _fail(
                        f"no device was offered an update: check that --app {args.app} is an "
                        f"app on {args.server} with an active release for --platform "
                        f"{args.platform}, --channel {args.channel} and these native versions",
                        0,
                    )
    return 0


#: What to check when every device fails with one error type.
_ADVICE = {
    "UnknownKeyError": "--trust-root must be the app's current trust root (the one the server "
    "has for --app); a rotated root is not followed by devices yet",
    "BadSignatureError": "--trust-root must be the app's trust root, and releases signed by its "
    "publisher keys",
    "KeyScopeError": "the publisher key's scope in --trust-root must cover --app, --platform "
    "and --channel",
    "NetworkError": "--server must be the HotPatch server's URL, reachable from here",
}


def _why_all_failed(summary: FleetSummary, args: argparse.Namespace) -> str:
    """Say why a whole round failed, with one example message and what to check."""
    kind, count = max(summary.errors.items(), key=lambda item: item[1])
    example = summary.error_examples.get(kind, "")
    advice = _ADVICE.get(kind, f"that --app {args.app}, --server and --trust-root belong together")
    return (
        f"every device's sync failed in round {summary.round} ({kind} x{count}: {example}); "
        f"check {advice}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "simulate":
        return _simulate(args)
    return 1  # pragma: no cover - argparse requires a command
