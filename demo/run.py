"""The whole HotPatch loop in one command: ``python3 -m nox -s demo``.

In a temporary directory it:

1. starts ``hotpatch-server`` on its embedded defaults (SQLite, local disk);
2. makes a root key, a publisher signing key and a trust root with the
   ``hotpatch`` CLI (naming the server's timestamp key, so every device
   checks the signed channel head of each answer), creates the app and a
   publisher API key, logs in;
3. publishes release 1.0.1 of the fixture app (its Android build output,
   kept in the repository under fixtures/rn-build/v1; with --metro, a fresh
   Metro build of fixtures/rn-app) to 10 % of devices;
4. runs a fleet of simulated devices (real ``hotpatch_client`` agents, and a
   fifth of them ``react-native-code-push`` apps speaking the CodePush
   protocol with a deployment key), raises the rollout to 100 %, and shows
   every device moving to 1.0.1;
5. publishes a bad release 1.0.2 whose launches crash, and shows the devices
   trying it, crashing, reverting on their own and reporting it;
6. rolls back with ``hotpatch rollback`` and shows the fleet settle;
7. prints a narrated summary with the numbers, and cleans up.

Usage: python demo/run.py [--devices 50] [--metro] [--keep DIR]
Exit status 0 means every step happened as narrated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hotpatch_client import AgentConfig, device_http_client
from hotpatch_client.simulate import Fleet, FleetSummary
from hotpatch_core.manifest import Platform
from hotpatch_core.trust import load_trust_root
from hotpatch_server.testing import free_port, serving

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PREBUILT = FIXTURES / "rn-build" / "v1"
FIXTURE_APP = FIXTURES / "rn-app"
SDK = FIXTURES.parent / "packages" / "hotpatch-react-native"
APP = "com.example.hotpatchdemo"


class DemoError(RuntimeError):
    """A step did not do what the narration says."""


def say(text: str = "") -> None:
    """Narrate."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def expect(condition: bool, what: str) -> None:  # noqa: FBT001 - reads as an assertion
    """Stop the demo if a step did not do what it should."""
    if not condition:
        raise DemoError(what)


class Demo:
    """The demo's state: where things live and how to run the commands."""

    def __init__(self, work: Path) -> None:
        """Use ``work`` for everything."""
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATCH_")}
        self.env.update(
            HOTPATCH_HOME=str(work / "cli"),
            HOTPATCH_DATA_DIR=str(work / "server"),
            HOME=str(work),
        )
        self.base_url = ""

    def run(self, tool: str, *args: str) -> str:
        """Run one of our commands; return its stdout, or stop with its error line."""
        done = subprocess.run(  # noqa: S603 - our own console scripts
            [str(BIN / tool), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            raise DemoError(f"{tool} {args[0]} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    def hotpatch(self, *args: str) -> Any:
        """Run the CLI with --json and parse the result."""
        return json.loads(self.run("hotpatch", *args, "--json"))

    @contextmanager
    def server(self) -> Iterator[None]:
        """Start hotpatch-server on a free port (its log in server.log); stop it at the end."""
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {**self.env, "HOTPATCH_PUBLIC_URL": self.base_url}
        with (self.work / "server.log").open("w") as log, serving(env, port, log):
            yield


def build_bundle(demo: Demo, *, metro: bool) -> tuple[Path, str]:
    """Return a directory holding the 1.0.1 bundle, and how it was made."""
    target = demo.work / "bundle-1.0.1"
    if not metro:
        shutil.copytree(PREBUILT, target)
        return target, "the fixture app's Android build from fixtures/rn-build/v1"
    if shutil.which("npx") is None or shutil.which("npm") is None:
        raise DemoError("--metro needs Node.js and npm (node, npm and npx on PATH)")
    # The app finds the SDK's sources at ../../packages/hotpatch-react-native (metro.config.js).
    app = demo.work / "fixtures" / "rn-app"
    shutil.copytree(FIXTURE_APP, app, ignore=shutil.ignore_patterns("node_modules"))
    sdk = demo.work / "packages" / "hotpatch-react-native"
    shutil.copytree(SDK / "src", sdk / "src")
    shutil.copy2(SDK / "package.json", sdk / "package.json")
    say("   installing the fixture app's dependencies (npm ci, about 30 s) ...")
    _node(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], app, demo)
    say("   building the fixture app with Metro (npx react-native bundle, about a minute) ...")
    target.mkdir()
    _node(
        ["npx", "react-native", "bundle", "--platform", "android", "--dev", "false",
         "--entry-file", "index.js", "--bundle-output", str(target / "index.android.bundle"),
         "--assets-dest", str(target)],
        app, demo,
    )  # fmt: skip
    return target, "a fresh Metro build of fixtures/rn-app"


def _node(command: list[str], cwd: Path, demo: Demo) -> None:
    """Run an npm tool in ``cwd``; stop the demo with its last output if it fails."""
    done = subprocess.run(  # noqa: S603 - npm and npx with fixed arguments
        [shutil.which(command[0]) or command[0], *command[1:]],
        cwd=cwd, env={**demo.env, "HOME": os.environ.get("HOME", str(demo.work))},
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"{' '.join(command[:2])} failed: {(done.stderr or done.stdout)[-800:]}")


def bad_bundle(demo: Demo) -> Path:
    """Make a 1.0.2 bundle: the same app plus a change that crashes at start-up."""
    target = demo.work / "bundle-1.0.2"
    shutil.copytree(demo.work / "bundle-1.0.1", target)
    with (target / "index.android.bundle").open("a") as bundle:
        bundle.write("\nthrow new Error('1.0.2: undefined is not a function');\n")
    return target


def rounds(fleet: Fleet, count: int, label: str) -> FleetSummary:
    """Run ``count`` rounds, narrating each; return the last summary."""
    summary: FleetSummary | None = None
    for _ in range(count):
        summary = fleet.run_round()
        say(f"   [{label}] {summary.describe()}")
    assert summary is not None  # noqa: S101 - count >= 1
    return summary


def stats(demo: Demo, token: str, release_id: int) -> dict[str, Any]:
    """Return the server's installation statistics of a release."""
    response = httpx.get(
        f"{demo.base_url}/releases/{release_id}/stats",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def run_demo(work: Path, devices: int, *, metro: bool) -> dict[str, Any]:  # noqa: PLR0915 - the story, in order
    """Run every step; return the numbers of the summary."""
    demo = Demo(work)
    numbers: dict[str, Any] = {"devices": devices}
    with demo.server():
        say(f"1. hotpatch-server is running at {demo.base_url} (SQLite + local disk in {work})")

        cli_home = work / "cli"
        demo.hotpatch("keys", "generate", "--scope-app", APP)
        demo.hotpatch("keys", "generate", "--root", "--out", str(work / "root.pem"))
        demo.hotpatch("keys", "export-public", "--out", str(work / "publisher.pub"))
        root_file, stamp = work / "trust-root.json", work / "timestamp.pub"
        demo.run("hotpatch-server", "timestamp-key", "--out", str(stamp))
        demo.hotpatch("trust-root", "create", "--root-key", str(work / "root.pem"),
                      "--publisher", f"{work / 'publisher.pub'}:ci", "--scope-app", APP,
                      "--timestamp-key", str(stamp), "--out", str(root_file))  # fmt: skip
        demo.run("hotpatch-server", "create-app", APP, "--trust-root", str(root_file))
        token = (
            demo.run(
                "hotpatch-server",
                "create-key",
                "--name",
                "demo",
                "--role",
                "publisher",
                "--app",
                APP,
            )
            .strip()
            .splitlines()[-1]
        )
        demo.hotpatch("login", "--api-url", demo.base_url, "--token", token, "--app", APP)
        admin = (
            demo.run("hotpatch-server", "create-key", "--name", "ops", "--role", "admin",
                     "--app", APP)
            .strip()
            .splitlines()[-1]
        )  # fmt: skip
        deployment_key = demo.hotpatch(
            "deployment-keys", "create", "--platform", "android", "--name", "demo store build",
            "--token", admin,
        )["key"]  # fmt: skip
        say(
            f"2. made a root key, a signing key ({cli_home / 'signing_key.pem'}) and a trust root "
            "that names the server's timestamp key (devices check the signed channel head);"
        )
        say(f"   created app {APP} on the server and logged the CLI in with a publisher key")

        bundle, how = build_bundle(demo, metro=metro)
        first = demo.hotpatch("release", "--platform", "android", "--version", "1.0.1",
                              "--rollout", "10", "--bundle-dir", str(bundle))  # fmt: skip
        say(f"3. published 1.0.1 ({how}) as sequence {first['sequence']}, "
            f"{first['size'] / 1e6:.2f} MB, to 10 % of devices")  # fmt: skip

        config = AgentConfig(
            server_url=demo.base_url,
            app_id=APP,
            platform=Platform.ANDROID,
            native_version="1.0.0",
            trust_root=load_trust_root(root_file.read_bytes()),
        )
        codepush = devices // 5
        numbers["codepush_devices"] = codepush
        with device_http_client(timeout=30) as http, Fleet(
            config, http=http, devices=devices, storage=work / "fleet",
            crash_versions={"1.0.2"}, id_prefix="demo",
            codepush_devices=codepush, deployment_key=deployment_key,
        ) as fleet:  # fmt: skip
            say(f"4. a fleet of {devices} simulated devices (binary 1.0.0, embedded bundle) "
                f"syncs: {devices - codepush} HotPatch agents and {codepush} "
                "react-native-code-push apps (CodePush protocol, deployment key made with "
                "`hotpatch deployment-keys create`)")  # fmt: skip
            at_ten = rounds(fleet, 1, "10 %")
            numbers["staged_at_10_percent"] = at_ten.staged
            # Cohorts are random per release, so "about a tenth": never close to all of them.
            expect(at_ten.staged < devices / 2, "a 10 % rollout should reach only a few devices")
            demo.hotpatch(
                "rollout", "--platform", "android", "--version", "1.0.1", "--percent", "100"
            )
            say("   rollout raised to 100 % with `hotpatch rollout --percent 100`")
            rounds(fleet, 1, "100 %")
            settled = rounds(fleet, 1, "100 %")
            numbers["on_1_0_1"] = settled.running.get("1.0.1", 0)
            expect(numbers["on_1_0_1"] == devices, "every device should run 1.0.1")

            second = demo.hotpatch("release", "--platform", "android", "--version", "1.0.2",
                                   "--bundle-dir", str(bad_bundle(demo)))  # fmt: skip
            say(f"5. published 1.0.2 as sequence {second['sequence']} to 100 %: "
                "it throws at start-up")  # fmt: skip
            staged = rounds(fleet, 1, "bad release")
            expect(staged.staged == devices, "every device should stage 1.0.2")
            # A CodePush app rolls back at the next start; an agent after two crashed launches.
            numbers["crashed_launches"] = sum(
                rounds(fleet, 1, "bad release").crashed for _ in range(2)
            )
            reverted = rounds(fleet, 1, "bad release")
            numbers["rolled_back_devices"] = reverted.rolled_back_devices
            expect(reverted.rolled_back_devices == devices, "every device should revert 1.0.2")
            expect(reverted.running.get("1.0.1") == devices, "every device should be back on 1.0.1")
            time.sleep(0.5)  # the server batches device reports
            bad = stats(demo, token, int(second["id"]))
            numbers["server_rolled_back_reports"] = bad["installations"]["rolled_back"]
            say(f"   the server counts {bad['installations']['rolled_back']} rolled_back reports "
                f"for 1.0.2 ({bad['failuresByPhase']})")  # fmt: skip

            back = demo.hotpatch("rollback", "--platform", "android", "--version", "1.0.1")
            say(f"6. `hotpatch rollback --version 1.0.1` published 1.0.1's content again as "
                f"sequence {back['sequence']}: devices move forward to it, never back")  # fmt: skip
            rounds(fleet, 1, "rollback")
            final = rounds(fleet, 1, "rollback")
            numbers["final_running"] = final.running
            expect(final.running == {"1.0.1": devices}, "every device should run 1.0.1")
            expect(final.crashed == 0, "nothing should crash after the rollback")
    return numbers


def main() -> int:
    """Run the demo in a temporary directory (or --keep DIR) and narrate it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument(
        "--metro",
        action="store_true",
        help="build the fixture app with Metro first (needs Node.js; about a minute more)",
    )
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it")
    args = parser.parse_args()
    say("HotPatch demo: a signed over-the-air update, a staged rollout, a crash and a rollback.\n")
    work = args.keep or Path(tempfile.mkdtemp(prefix="hotpatch-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        numbers = run_demo(work, args.devices, metro=args.metro)
    except (DemoError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        say(f"\ndemo failed: {exc}")
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    n = numbers["devices"]
    say(
        "\n7. Summary\n"
        f"   - {n} devices, {numbers['codepush_devices']} of them react-native-code-push apps, "
        "all served from the same releases.\n"
        f"   - 1.0.1 at 10 % reached {numbers['staged_at_10_percent']} of {n} devices; at 100 %, "
        f"all {numbers['on_1_0_1']}.\n"
        f"   - 1.0.2 crashed {numbers['crashed_launches']} launches; "
        f"{numbers['rolled_back_devices']} of {n} devices reverted on their own, and the server "
        f"received {numbers['server_rolled_back_reports']} rolled_back reports.\n"
        f"   - after `hotpatch rollback`: {numbers['final_running']} — every device on 1.0.1, "
        "each agent's install verified against the signed manifest, each CodePush app's against "
        "its package hash.\n"
        + ("   (work directory kept in " + str(args.keep) + ")" if args.keep else
           "   (the temporary directory and the server are gone)")
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
