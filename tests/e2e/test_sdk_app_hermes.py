"""The fixture app on a stand-in phone: its Metro bundle runs in Hermes, updated by a real server.

``fixtures/rn-app`` uses the SDK as an app does (``configure`` in its entry
file, ``notifyAppReady`` once its first screen rendered, a banner from
``useHotPatch`` when an update is ready), and ``fixtures/rn-build`` holds its
Metro builds (``test_react_native.py`` checks they are the app's own build,
byte for byte). Here a :class:`Phone` with that app installed launches it
again and again:

- each launch is a new app process, as on Android: first what
  ``MainApplication.onCreate`` does (``HotPatch.onLaunch``: count the launch,
  pick the bundle), then a Hermes VM (the REPL of ``hermes-engine-cli``) that
  runs ``platform.js`` (React Native's native side: module registry, Fabric
  UI manager keeping the rendered tree), ``device-native.js`` (the HotPatch
  module) and the chosen bundle, and starts the app;
- the HotPatch module's calls come out of the VM as lines and are answered
  by the phone's native side, one of three (the test runs with each):
  ``kotlin-module``, the SDK's own ``HotPatch.onLaunch`` and
  ``HotPatchModule`` with the Kotlin core, in a JVM process
  (``DeviceHost.kt``, in the adapter's tests) where only Android and React
  Native are fakes; ``swift-module``, the SDK's ``HotPatch.onLaunch`` and
  ``ModuleCore`` with the Swift core (``HotPatchDeviceHost``, in the Swift
  chroot; it asks for Android releases, as the fixture's builds are
  Android's); or ``python-agent``, the Python reference agent answering as
  ``HotPatchModule.kt`` does. All three take patches, from the JS bundle in
  the APK's assets (registered with ``hotpatch embedded register``) and from
  an installed bundle; the Swift core with the system's zstd, bzip2 and
  LZMA2 in the chroot. Each verifies and installs what a real
  ``hotpatch-server`` process sends;
- a fatal JavaScript error ends the process, as it does on a phone.

So the app's own JavaScript, React Native's and the SDK's, decides what to
call and when; what the phone runs at the next launch is the file the
native side verified and installed. Not covered here: React Native's own
native code (its bridge, Fabric, the Android and iOS frameworks) and a real
device (the checklists in docs/howto/react-native-sdk.md). The Hermes of
``hermes-engine-cli`` is 0.12, older than react-native 0.82's.
"""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from hotpatch_client import (
    Agent,
    AgentConfig,
    NetworkError,
    Progress,
    StorageError,
    device_http_client,
)
from hotpatch_core.archive import FileEntry
from hotpatch_core.errors import HotPatchError, IllegalTransitionError
from hotpatch_core.manifest import Platform
from hotpatch_core.trust import load_trust_root
from hotpatch_diff import embedded_id

from .conftest import REPO, LiveServer, live_server, load_script

EXAMPLE = "packages/hotpatch-react-native/example"
IOS_RUNNER = REPO / "packages" / "hotpatch-react-native" / "ios" / "run_tests.py"
ANDROID_RUNNER = REPO / "packages" / "hotpatch-react-native" / "android" / "core" / "run_tests.py"
BUILDS = REPO / "fixtures" / "rn-build"
APP = "com.example.hotpatchdemo"
#: What the app's JavaScript configures (fixtures/rn-app/src/updates.ts): the
#: development machine as the Android emulator reaches it. The phone's
#: network sends it to the test's server.
APP_SERVER_URL = "http://10.0.2.2:8080"
#: What the app binary's HotPatchSettings say; configure() must agree.
BINARY_SETTINGS = {"serverUrl": APP_SERVER_URL, "appId": APP, "channel": "production"}
MARK = "\x01device "
STEP_SECONDS = 120.0


class VmError(AssertionError):
    """The VM ended, or did not answer within STEP_SECONDS."""


class Vm:
    """One app process: a Hermes VM read line by line (the REPL of hermes-engine-cli).

    The REPL evaluates one line at a time and, before the next, runs every
    job and timer the line queued; so once the line after some input has
    answered, everything that input started has run.
    """

    def __init__(self, hermes: Path, scripts: list[str]) -> None:
        """Start the VM and evaluate ``scripts`` in its global scope, in order."""
        self._process = subprocess.Popen(
            [str(hermes), "-Xes6-promise", "-Xes6-proxy", "-Xmicrotask-queue"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8",
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []  # what the VM printed that is not a message (for failures)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        for script in scripts:
            self.send(f"(0, eval)({json.dumps(script)}); void 0")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, line: str) -> None:
        """Evaluate one line of JavaScript."""
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def pump(self) -> list[dict[str, Any]]:
        """Return the messages the VM sent until it went idle."""
        self.send('__device.send({kind: "idle"})')
        messages: list[dict[str, Any]] = []
        while True:
            try:
                line = self._lines.get(timeout=STEP_SECONDS)
            except queue.Empty:
                raise VmError(f"the VM did not answer: {self.output[-20:]}") from None
            if line is None:
                raise VmError(f"the VM ended: {self.output[-20:]}")
            at = line.find(MARK)
            if at < 0:
                text = line.strip().removeprefix(">>").strip()
                if text.startswith("Uncaught"):  # thrown outside React Native's handlers
                    messages.append({"kind": "fatal", "text": text})
                elif text not in {"", "undefined"}:
                    self.output.append(text)
                continue
            message = json.loads(line[at + len(MARK) :])
            if message["kind"] == "idle":
                return messages
            messages.append(message)

    def close(self) -> None:
        """End the process (a phone kills it; nothing in it is flushed)."""
        self._process.kill()
        self._process.wait(timeout=30)
        self._reader.join(timeout=30)  # it reads to the end of what the process wrote
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


@attrs.define
class Launch:
    """What one launch of the app did."""

    bundle: bytes  # the bundle the VM ran
    calls: list[str] = attrs.Factory(list)  # the HotPatch methods the JavaScript called
    progress: set[str] = attrs.Factory(set)  # the stages of the progress events sent to it
    screen: list[str] = attrs.Factory(list)  # the text on the screen once the app settled
    warnings: list[str] = attrs.Factory(list)  # console.warn and console.error
    crashed: str | None = None  # the fatal error that ended the process
    restart_requested: bool = False
    offers: list[Any] = attrs.Factory(list)  # what checkForUpdate() resolved with


def _code(error: HotPatchError) -> str:
    """The JavaScript error code of a refusal or failure (HotPatchModule.code)."""
    if isinstance(error, NetworkError):
        return "E_NETWORK"
    if isinstance(error, StorageError):
        return "E_STORAGE"
    if isinstance(error, IllegalTransitionError):
        return "E_NO_UPDATE"
    return "E_VERIFICATION"


def _bundle(bundle: Any) -> dict[str, Any] | None:
    if bundle is None:
        return None
    return {
        "manifestId": bundle.manifest_id,
        "version": bundle.version,
        "epoch": bundle.epoch,
        "sequence": bundle.sequence,
    }


class Module:
    """The HotPatch module of one app process, as HotPatchModule.kt answers, over the agent."""

    def __init__(self, agent: Agent, launch: Launch, vm: Vm) -> None:
        """Serve ``vm``'s calls with ``agent``, recording them in ``launch``."""
        self.agent, self.launch, self.vm = agent, launch, vm
        self.configured = False
        self.offered: str | None = None

    def answer(self, call: dict[str, Any]) -> None:
        """Perform one call and settle its promise in the VM."""
        method, args, ident = call["method"], call["args"], call["id"]
        self.launch.calls.append(method)
        if method == "restartApp":
            self.launch.restart_requested = True
            return
        error: dict[str, Any] | None = None
        value: Any = None
        after: Callable[[], object] | None = None
        if method == "configure":
            differs = sorted(k for k, v in BINARY_SETTINGS.items() if args[0].get(k) != v)
            if differs:
                error = self._error("E_INVALID_CONFIG", f"configure() differs in {differs}")
            self.configured = not differs
        elif method == "getStatus":
            state = self.agent.state
            value = {
                "configured": self.configured,
                "nativeVersion": state.native_version or "",
                "running": _bundle(state.running),
                "pending": _bundle(state.pending),
                "onTrial": state.trial is not None and state.running == state.trial,
            }
        elif not self.configured:
            error = self._error("E_NOT_CONFIGURED", "call configure() first")
        else:
            try:
                value, after = self._agent_call(method, args)
            except HotPatchError as exc:
                error = self._error(_code(exc), str(exc), type(exc).__name__)
            if method == "checkForUpdate" and error is None:
                self.launch.offers.append(value)
        self.vm.send(f"__device.settle({ident}, {json.dumps(error)}, {json.dumps(value)})")
        if after is not None:
            after()

    def _agent_call(self, method: str, args: list[Any]) -> tuple[Any, Callable[[], object] | None]:
        agent = self.agent
        if method == "checkForUpdate":
            agent.flush_reports()  # what earlier launches left queued goes first
            offer = agent.check()
            self.offered = None if offer is None else offer.manifest_id
            if offer is None:
                return None, None
            return {
                "manifestId": offer.manifest_id,
                "version": offer.version,
                "epoch": offer.epoch,
                "sequence": offer.sequence,
                "mandatory": offer.mandatory,
                "downloadSize": offer.download_size,
                "isPatch": offer.patch_size is not None,
            }, None
        if method == "downloadUpdate":
            if args[0] != self.offered:
                raise IllegalTransitionError(f"{args[0]} is not the release the last check offered")

            def progress(step: Progress) -> None:
                self.launch.progress.add(step.stage)
                body = {"stage": step.stage, "done": step.done, "total": step.total}
                self.vm.send(f"__device.emit('HotPatchProgress', {json.dumps(body)})")

            agent.download(progress)
            return _bundle(agent.state.pending), None
        if method == "notifyAppReady":
            agent.notify_ready()
            return None, agent.flush_reports  # sent once the promise settled
        raise AssertionError(f"the JavaScript called an unknown method {method}")

    @staticmethod
    def _error(code: str, message: str, reason: str = "") -> dict[str, Any]:
        return {"code": code, "message": message, "userInfo": {"reason": reason}}


@attrs.frozen
class Host:
    """How to start an app process with the SDK's own module, built on this machine."""

    classpath: list[Path] = attrs.Factory(list)  # kotlin-module: DeviceHostKt's class path
    root: Path = Path("/")  # swift-module: the chroot the program runs in
    program: str = ""  # swift-module: HotPatchDeviceHost, as the chroot sees it
    argv: Callable[[list[str]], list[str]] = list  # swift-module: a command, run in the chroot


class PythonNative:
    """The native side of one app process, answered by the Python reference agent."""

    def __init__(self, phone: Phone) -> None:
        """Open the phone's storage with the agent, as MainApplication.onCreate does."""
        self._http = device_http_client()
        self.agent = Agent(phone.config, http=self._http, storage_dir=phone.storage)
        self.module: Module | None = None

    def launch(self) -> str | None:
        """Count the launch and pick the bundle (``HotPatch.onLaunch``): None for the APK's."""
        return self.agent.on_launch()

    def attach(self, launch: Launch, vm: Vm) -> None:
        """Answer the calls of ``vm``'s JavaScript from now on."""
        self.module = Module(self.agent, launch, vm)

    def answer(self, call: dict[str, Any]) -> None:
        """Perform one call and settle its promise in the VM."""
        assert self.module is not None
        self.module.answer(call)

    def close(self) -> None:
        """End the process."""
        self.agent.close()
        self._http.close()


class RelayedNative:
    """The native side of one app process: the SDK's own module, in a process of its own.

    ``kotlin-module``: a JVM runs ``DeviceHost`` (the adapter's tests),
    ``HotPatch.onLaunch`` and ``HotPatchModule`` with only Android and React
    Native faked. ``swift-module``: ``HotPatchDeviceHost`` runs
    ``HotPatch.onLaunch`` and ``ModuleCore`` in the Swift chroot. The module,
    the core, the disk and the network are real; the calls of the VM's
    JavaScript are relayed to the process and its answers back.
    """

    def __init__(self, phone: Phone) -> None:
        """Start the app process."""
        host = phone.host
        assert host is not None
        common = [APP_SERVER_URL, phone.live.url, APP, "1.0.0"]
        if phone.native == "kotlin-module":
            java = shutil.which("java")
            assert java is not None
            argv = [java, "-cp", ":".join(map(str, host.classpath)),
                    "dev.hotpatch.reactnative.DeviceHostKt", str(phone.storage),
                    str(phone.live.root), *common, str(phone.apk)]  # fmt: skip
        else:
            inside = "/" + str(phone.storage.relative_to(host.root))
            program = [host.program, inside, f"{inside}-trust-root.json", *common,
                       str(int(time.time())),  # the harness's clock
                       f"{inside}-assets"]  # fmt: skip
            argv = host.argv(program)
        self._outside = host.root if phone.native == "swift-module" else None
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8"
        )
        self.launch_: Launch | None = None
        self.vm: Vm | None = None

    def _next(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise VmError(f"the app process ended (exit status {self._process.wait(30)})")
        message: dict[str, Any] = json.loads(line)
        return message

    def launch(self) -> str | None:
        """What ``HotPatch.onLaunch`` returned: the bundle file, None for the APK's."""
        message = self._next()
        assert message["kind"] == "launched", message
        bundle: str | None = message["bundle"]
        if bundle is not None and self._outside is not None:  # a path in the chroot
            return str(self._outside / bundle.lstrip("/"))
        return bundle

    def attach(self, launch: Launch, vm: Vm) -> None:
        """Answer the calls of ``vm``'s JavaScript from now on."""
        self.launch_, self.vm = launch, vm

    def answer(self, call: dict[str, Any]) -> None:
        """Relay one call to the module; relay its events and its settlement to the VM."""
        assert self.launch_ is not None
        assert self.vm is not None
        assert self._process.stdin is not None
        self.launch_.calls.append(call["method"])
        request = {"id": call["id"], "method": call["method"], "args": call["args"]}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        while (message := self._next())["kind"] != "done":
            if message["kind"] == "event":
                self.launch_.progress.add(message["body"]["stage"])
                self.vm.send(f"__device.emit({json.dumps(message['name'])}, "
                             f"{json.dumps(message['body'])})")  # fmt: skip
            elif message["kind"] == "settle":
                if call["method"] == "checkForUpdate" and message["error"] is None:
                    self.launch_.offers.append(message["value"])
                error, value = json.dumps(message["error"]), json.dumps(message["value"])
                self.vm.send(f"__device.settle({message['id']}, {error}, {value})")
            elif message["kind"] == "restart":
                self.launch_.restart_requested = True

    def close(self) -> None:
        """End the process (a phone kills it)."""
        self._process.kill()
        self._process.wait(timeout=30)
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


class Phone:
    """A phone with the fixture app installed: the APK's bundle and trust root, private storage.

    ``native`` is the app's native side: ``"kotlin-module"`` (the SDK's
    Android module and core, in a JVM process), ``"swift-module"`` (the SDK's
    iOS module behaviour and core, in a process in the Swift chroot), both
    started through ``host``; or ``"python-agent"`` (the Python reference
    agent answering as HotPatchModule.kt does, which also takes patches).
    """

    def __init__(
        self,
        hermes: Path,
        example: Path,
        apk: Path,
        live: LiveServer,
        *,
        native: str,
        host: Host | None = None,
    ) -> None:
        """Install the app whose APK holds ``apk`` (bundle, assets) and ``live``'s trust root."""
        self.hermes, self.apk, self.live, self.native, self.host = hermes, apk, live, native, host
        self.scripts = [(example / n).read_text() for n in ("platform.js", "device-native.js")]
        self.storage = apk.parent / "app-files"
        if native == "swift-module":  # the app's files where the chroot's process can write
            assert host is not None
            self.storage = Path(tempfile.mkdtemp(prefix="hotpatch-phone-", dir=host.root / "tmp"))
            shutil.copy(live.root, f"{self.storage}-trust-root.json")
            shutil.copytree(apk.parent / "assets", f"{self.storage}-assets")
        self.config = AgentConfig(
            server_url=live.url,  # the phone's network: APP_SERVER_URL reaches the test's server
            app_id=APP,
            platform=Platform.ANDROID,
            native_version="1.0.0",
            trust_root=load_trust_root(live.root.read_bytes()),
            embedded_dir=str(apk.parent / "assets"),  # what Android reads back: the JS bundle
        )

    def uninstall(self) -> None:
        """Remove the app's files (the chroot's among them)."""
        shutil.rmtree(self.storage, ignore_errors=True)
        Path(f"{self.storage}-trust-root.json").unlink(missing_ok=True)
        shutil.rmtree(f"{self.storage}-assets", ignore_errors=True)

    def launch(self) -> Launch:
        """Start the app, let it run until nothing more happens, and end the process."""
        native = PythonNative(self) if self.native == "python-agent" else RelayedNative(self)
        try:
            path = native.launch()  # MainApplication.onCreate, before React Native starts
            bundle = Path(path or self.apk / "index.android.bundle").read_bytes()
            launch = Launch(bundle)
            vm = Vm(self.hermes, [*self.scripts, bundle.decode()])
            try:
                native.attach(launch, vm)
                vm.send('__device.run("HotPatchDemo")')
                while True:
                    messages = vm.pump()
                    for message in messages:
                        if message["kind"] == "log" and message["level"] >= 2:
                            launch.warnings.append(message["text"])
                        elif message["kind"] == "fatal":
                            launch.crashed = message["text"]
                        elif message["kind"] == "call" and launch.crashed is None:
                            native.answer(message)
                    calls = [m for m in messages if m["kind"] == "call"]
                    if launch.crashed is not None or launch.restart_requested or not calls:
                        break
                if launch.crashed is None:
                    vm.send("__device.send({kind: 'screen', text: __device.screenText()})")
                    (screen,) = [m for m in vm.pump() if m["kind"] == "screen"]
                    launch.screen = screen["text"]
            finally:
                vm.close()
        finally:
            native.close()
        return launch


def _crashing(bundle: bytes) -> bytes:
    """The bundle plus a module, required last, that throws: a release that crashes at start."""
    crash = b'__d(function(){throw new Error("1.0.2 crashes at start")},999999,[]);__r(999999);\n'
    return bundle + b"\n" + crash


def _stats(live: LiveServer, version: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {live.token}"}
    query = {"appId": APP, "version": version}
    (release,) = httpx.get(f"{live.url}/releases", params=query, headers=headers, timeout=30).json()
    stats = httpx.get(f"{live.url}/releases/{release['id']}/stats", headers=headers, timeout=30)
    assert stats.status_code == 200, stats.text
    return stats.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def kotlin_host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The SDK's Android module and core as an app process (DeviceHostKt), built once per run."""
    runner = load_script(ANDROID_RUNNER, "hotpatch_android_build")
    try:
        classpath: list[Path] = runner.build_device_host(tmp_path_factory.mktemp("android"))
    except SystemExit as missing:  # says what is missing (.ci/run installs it)
        pytest.skip(str(missing))
    return Host(classpath=classpath)


@pytest.fixture(scope="session")
def swift_host() -> Host:
    """The SDK's iOS module behaviour and core as an app process (HotPatchDeviceHost)."""
    runner = load_script(IOS_RUNNER, "hotpatch_ios_build")
    try:
        root, program = runner.build_device_host()
    except SystemExit as missing:  # says what is missing (.ci/run prepares the chroot)
        pytest.skip(str(missing))
    return Host(root=root, program=program, argv=lambda command: runner.chroot_argv(root, command))


@pytest.fixture(params=["python-agent", "kotlin-module", "swift-module"])
def phone(
    request: pytest.FixtureRequest, npm_project: Callable[[str], Path], tmp_path: Path
) -> Iterator[tuple[Phone, LiveServer]]:
    """A server with the fixture app's 1.0.0 registered as the APK's bundle, and a phone with it."""
    example = npm_project(EXAMPLE)
    hermes = example / "node_modules" / "hermes-engine-cli" / "linux64-bin" / "hermes"
    if not hermes.is_file():
        pytest.skip("hermes-engine-cli has no Linux x86-64 VM on this machine")
    native: str = request.param
    hosts = {"kotlin-module": "kotlin_host", "swift-module": "swift_host"}
    host = request.getfixturevalue(hosts[native]) if native in hosts else None
    apk = tmp_path / "phone" / "apk"
    shutil.copytree(BUILDS / "v1", apk)
    # What an Android app can read back byte for byte is its assets/ (aapt2 rewrites the
    # drawables): the JS bundle. That is what is registered, as extracted from the APK.
    assets = apk.parent / "assets"
    assets.mkdir()
    shutil.copy(apk / "index.android.bundle", assets)
    with live_server(tmp_path / "server", APP) as live:
        live.cli("embedded", "register", "--platform", "android", "--native-version", "1.0.0",
                 "--bundle-dir", str(assets))  # fmt: skip
        device = Phone(hermes, example, apk, live, native=native, host=host)
        try:
            yield device, live
        finally:
            device.uninstall()


def _publish(live: LiveServer, version: str, bundle_dir: Path, *, patches: int = 0) -> None:
    """Publish ``version`` to every 1.0 phone; wait for the server to make ``patches`` patches."""
    live.cli("release", "--platform", "android", "--version", version, "--binary-range", "1.0.x",
             "--rollout", "100", "--bundle-dir", str(bundle_dir))  # fmt: skip
    deadline = time.monotonic() + STEP_SECONDS
    while len(_stats(live, version)["patches"]) < patches:  # made after the publish answered
        assert time.monotonic() < deadline, f"no patch to {version} after {STEP_SECONDS} s"
        time.sleep(0.2)


def test_the_fixture_app_updates_confirms_and_rolls_back_a_crashing_release(
    phone: tuple[Phone, LiveServer], tmp_path: Path
) -> None:
    """Take 1.0.1 and confirm it; 1.0.2 crashes at start twice, the phone goes back to 1.0.1.

    All three take 1.0.1 as a patch against the APK's bundle (its assets' JS
    bundle, as registered), and 1.0.2 as a patch against the installed 1.0.1.
    """
    device, live = phone
    v1 = (BUILDS / "v1" / "index.android.bundle").read_bytes()
    v2 = (BUILDS / "v2" / "index.android.bundle").read_bytes()
    _publish(live, "1.0.1", BUILDS / "v2", patches=1)  # from the APK's bundle

    # The APK's own bundle: it checks on launch, takes 1.0.1, and says so on screen.
    first = device.launch()
    assert first.bundle == v1
    assert first.crashed is None
    assert first.warnings == []  # configure() and notifyAppReady() were not refused
    assert sorted(first.calls) == [
        "checkForUpdate",
        "configure",
        "downloadUpdate",
        "notifyAppReady",
    ]
    assert first.calls[0] == "configure"
    assert first.progress == {"download", "install"}
    assert first.screen[-4:] == ["Version ", "1.0.1", " is ready", "Restart"]  # the banner
    assert [o["isPatch"] for o in first.offers] == [True]
    pending = device_state(device).pending
    assert (pending.version, pending.patched_from) == ("1.0.1", _embedded_id(device.apk.parent))

    # The next start runs 1.0.1, the file the device verified (Metro's build of the app's v2).
    second = device.launch()
    assert second.bundle == v2
    assert (second.crashed, second.restart_requested, second.warnings) == (None, False, [])
    assert "notifyAppReady" in second.calls
    assert "Restart" not in second.screen
    assert "Settings" in second.screen
    assert _stats(live, "1.0.1")["installations"] == {"applied": 1, "failed": 0, "rolled_back": 0}
    confirmed = device_state(device).confirmed.manifest_id

    # 1.0.2 throws while it loads: two launches on trial crash, the third is 1.0.1 again.
    crashing = tmp_path / "v3"
    shutil.copytree(BUILDS / "v2", crashing)
    (crashing / "index.android.bundle").write_bytes(_crashing(v2))
    _publish(live, "1.0.2", crashing, patches=2)  # from the APK's bundle and from 1.0.1
    third = device.launch()
    assert third.crashed is None  # downloaded, for the next start
    (offer,) = third.offers
    assert offer["version"] == "1.0.2"
    assert offer["isPatch"]  # what JavaScript is told
    staged = device_state(device).pending
    assert staged.version == "1.0.2"
    assert staged.patched_from == confirmed  # built from the patch against 1.0.1
    for _ in range(2):
        crashed = device.launch()
        assert crashed.bundle == _crashing(v2)
        assert crashed.crashed is not None
        assert "1.0.2 crashes at start" in crashed.crashed
    back = device.launch()
    assert back.bundle == v2
    assert (back.crashed, back.warnings) == (None, [])
    assert "checkForUpdate" in back.calls
    assert "downloadUpdate" not in back.calls  # not again
    assert _stats(live, "1.0.2")["installations"] == {"applied": 0, "failed": 0, "rolled_back": 1}


def _embedded_id(phone: Path) -> str:
    """The id both sides give the APK's bundle (hotpatch_diff.embedded_id)."""
    data = (phone / "assets" / "index.android.bundle").read_bytes()
    entry = FileEntry("index.android.bundle", hashlib.sha256(data).hexdigest(), len(data))
    return embedded_id(APP, "android", "1.0.0", [entry])


def device_state(device: Phone) -> Any:
    """The saved state, read by the reference agent (every side writes the same files)."""
    # The Kotlin module keeps them in the app's files/hotpatch, as HotPatch.kt does.
    storage = device.storage / "hotpatch" if device.native == "kotlin-module" else device.storage
    with (
        device_http_client() as http,
        Agent(device.config, http=http, storage_dir=storage) as agent,
    ):
        return agent.state


def _patch_blobs(live: LiveServer) -> set[Path]:
    """The server's stored patches (blobs in its data directory that begin with b"HPD")."""
    data = Path(live.env["HOTPATCH_DATA_DIR"])
    found = set()
    for path in data.rglob("*"):
        if path.is_file():
            with path.open("rb") as blob:
                if blob.read(3) == b"HPD":
                    found.add(path)
    return found


def test_a_damaged_patch_costs_a_download_never_the_update(
    phone: tuple[Phone, LiveServer], tmp_path: Path
) -> None:
    """Every patch to 1.0.2 is damaged on the server: the phone reports it and takes the archive."""
    device, live = phone
    _publish(live, "1.0.1", BUILDS / "v2", patches=1)
    assert device.launch().crashed is None  # takes 1.0.1
    assert device.launch().bundle == (BUILDS / "v2" / "index.android.bundle").read_bytes()
    before = _patch_blobs(live)
    fixed = tmp_path / "v3"
    shutil.copytree(BUILDS / "v2", fixed)
    v3 = (BUILDS / "v2" / "index.android.bundle").read_bytes() + b"\n// 1.0.2: a comment\n"
    (fixed / "index.android.bundle").write_bytes(v3)
    _publish(live, "1.0.2", fixed, patches=2)  # from the APK's bundle and from 1.0.1
    damaged = _patch_blobs(live) - before
    assert len(damaged) == 2
    for blob in damaged:  # the same length, so the offer still fits: the bytes are wrong
        data = bytearray(blob.read_bytes())
        for at in range(12, len(data)):
            data[at] ^= 0x5A
        blob.write_bytes(bytes(data))

    third = device.launch()
    assert (third.crashed, third.warnings) == (None, [])
    assert "downloadUpdate" in third.calls
    staged = device_state(device).pending
    assert (staged.version, staged.patched_from) == ("1.0.2", None)  # the archive, after all
    fourth = device.launch()
    assert fourth.bundle == v3
    assert "notifyAppReady" in fourth.calls
    # The failed patch was reported (its reason says so); then the release was applied.
    assert _stats(live, "1.0.2")["installations"] == {"applied": 1, "failed": 1, "rolled_back": 0}
