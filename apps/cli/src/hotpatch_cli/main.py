"""``hotpatch`` (alias ``rn-ota``): build, sign, publish and roll back releases.

The parser built by :func:`build_parser` is the single definition of every
command and flag; the CLI reference in the docs is generated from it.

Exit codes: 0 ok, 1 usage or invalid input, 2 authentication or
authorization, 3 conflict (version or sequence exists), 4 server or
network, 5 build failed, 6 not found, 7 upload too large.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import httpx

from hotpatch_cli.commands import (
    account,
    channels,
    deployment_keys,
    patches,
    publish,
    signing,
)
from hotpatch_cli.commands import expo as expo_commands
from hotpatch_cli.config import load_settings
from hotpatch_cli.context import Context, stdin_is_tty
from hotpatch_cli.errors import CliError, ExitCode
from hotpatch_cli.output import Output
from hotpatch_core.errors import HotPatchError
from hotpatch_core.manifest import Platform

__all__ = ["EXIT_CODES", "build_parser", "main", "reference_markdown"]

Handler = Callable[[Context, argparse.Namespace], None]

EXIT_CODES: Final = {
    ExitCode.OK: "success",
    ExitCode.USAGE: "usage error or invalid input (bad flag, version, key, config)",
    ExitCode.AUTH: "the server refused the credentials, or the key may not sign here",
    ExitCode.CONFLICT: "the version or sequence exists already",
    ExitCode.SERVER: "the server is unreachable or failed",
    ExitCode.BUILD: "the bundle command or hermesc failed",
    ExitCode.NOT_FOUND: "no such app, release or version",
    ExitCode.TOO_LARGE: "the upload exceeds the server's cap",
}

_PLATFORMS = [p.value for p in Platform]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors exit 1 (not argparse's 2, which means auth here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _add_common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Add the shared flags; on subcommands they keep what was given before the command."""
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    flag: dict[str, Any] = {"default": False} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--api-url", help="server URL (env HOTPATCH_API_URL; saved by login)", **keep
    )
    group.add_argument("--token", help="API key or access token (env HOTPATCH_TOKEN)", **keep)
    group.add_argument("--app", help="app id, e.g. com.acme.shop (env HOTPATCH_APP)", **keep)
    group.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout", **flag
    )
    group.add_argument(
        "--verbose", action="store_true", help="more detail; tracebacks on errors", **flag
    )


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        help="signing key PEM file (default: env HOTPATCH_SIGNING_KEY, then "
        "HOTPATCH_SIGNING_KEY_FILE, then ~/.hotpatch/signing_key.pem)",
    )


def _add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="ci", help="the publisher key's name (default ci)")
    parser.add_argument("--scope-app", action="append", help="apps the key may sign for (repeat)")
    parser.add_argument("--scope-platform", action="append", choices=[*_PLATFORMS, "*"])
    parser.add_argument("--scope-channel", action="append", help="channels (repeat; default *)")


def _add_expo(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    expo = parser.add_argument_group("expo-updates (serve the release to Expo apps too)")
    expo.add_argument(
        "--runtime-version", help="the app's runtimeVersion: serve it to expo-updates apps of it"
    )
    if config:
        expo.add_argument(
            "--expo-config", help="the public Expo config (npx expo config --type public --json)"
        )
    expo.add_argument("--expo-signing-key", help="PEM private key from expo-updates codesigning")
    expo.add_argument("--expo-certificate", help="its PEM certificate (the one the app embeds)")
    expo.add_argument("--expo-key-id", default="main", help="codeSigningMetadata keyid (main)")


_DURATION: Final = re.compile(r"([1-9][0-9]{0,4})([dhm])")
_UNITS: Final = {"d": "days", "h": "hours", "m": "minutes"}


def expires_in(text: str) -> timedelta | None:
    """Parse ``--expires-in``: ``never`` or a count of days, hours or minutes (``90d``, ``12h``)."""
    if text == "never":
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        msg = f"{text!r} is not a duration: use e.g. 365d, 30d, 12h, 90m or never"
        raise argparse.ArgumentTypeError(msg)
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _add_expiry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires-in",
        type=expires_in,
        default=timedelta(days=365),
        metavar="DURATION",
        help="devices refuse the release this long after it is signed (the bound on how long "
        "a mirror can replay it); publish again before then. e.g. 30d, 12h; 'never' for no "
        "expiry (default: 365d)",
    )


def _target(parser: argparse.ArgumentParser, *, channel: bool = True) -> None:
    parser.add_argument("--platform", required=True, choices=_PLATFORMS)
    parser.add_argument("--version", required=True, help="the release's version label")
    if channel:
        parser.add_argument("--channel", default="production")


def _version() -> str:
    try:
        return importlib.metadata.version("hotpatch-cli")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - the whole command tree, in one place
    """Return the parser of every command."""
    parser = _Parser(
        prog="hotpatch",
        description="Build, sign, publish and roll back HotPatch releases.",
        epilog="Exit codes: " + "; ".join(f"{int(c)} {t}" for c, t in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"hotpatch {_version()}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=text, description=text)
        _add_common(child)
        child.set_defaults(handler=handler)
        return child

    command(
        "login",
        account.login,
        "Check an API endpoint and token against the server and save them "
        "(~/.hotpatch/config.toml, 0600). Prompts only on a terminal.",
    )

    keys = sub.add_parser("keys", help="Ed25519 signing keys", description="Ed25519 signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    def key_command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        child = keys_sub.add_parser(name, help=text, description=text)
        _add_common(child)
        child.set_defaults(handler=handler)
        return child

    generate = key_command(
        "generate",
        signing.keys_generate,
        "Create a signing key (PKCS#8 PEM, 0600); print its public key and trust-root entry.",
    )
    generate.add_argument("--out", help="where to write it (default ~/.hotpatch/signing_key.pem)")
    generate.add_argument(
        "--root",
        action="store_true",
        help="a root key, to sign trust roots only (needs --out; keep it offline)",
    )
    generate.add_argument("--force", action="store_true", help="replace an existing file")
    _add_scope(generate)
    show = key_command(
        "show", signing.keys_show, "Print the signing key's id, public key and trust-root entry."
    )
    _add_key(show)
    _add_scope(show)
    export = key_command(
        "export-public", signing.keys_export_public, "Write the public key (SPKI PEM)."
    )
    _add_key(export)
    export.add_argument("--out", help="file to write (default: stdout)")
    codepush_key = key_command(
        "generate-codepush",
        signing.keys_generate_codepush,
        "Create the RSA key pair of CodePush code signing: the private key (PEM, 0600) for "
        "`hotpatch release --codepush-signing-key`, the public key for CodePushPublicKey.",
    )
    codepush_key.add_argument("--out", required=True, help="the private key file to write")
    codepush_key.add_argument(
        "--public-out", help="the public key file (default: OUT with .pub.pem)"
    )
    codepush_key.add_argument("--bits", type=int, default=2048, choices=[2048, 3072, 4096])
    codepush_key.add_argument("--force", action="store_true", help="replace existing files")

    roots = sub.add_parser(
        "trust-root", help="create or rotate an app's trust root", description="Trust roots"
    )
    roots_sub = roots.add_subparsers(dest="root_command", required=True, metavar="ACTION")
    create = roots_sub.add_parser(
        "create",
        help="create and sign an app's first trust root",
        description="Create trust root v1, signed by its root keys; the app embeds the file.",
    )
    _add_common(create)
    create.set_defaults(handler=signing.trust_root_create)
    create.add_argument("--root-key", action="append", help="root private key PEM (repeat)")
    create.add_argument("--threshold", type=int, default=1, help="root keys needed to sign")
    create.add_argument("--publisher", action="append", help="publisher key PEM[:name] (repeat)")
    create.add_argument("--publisher-days", type=int, help="publisher keys expire after N days")
    create.add_argument("--epoch", type=int, default=1)
    create.add_argument("--days", type=int, help="the root expires after N days")
    create.add_argument(
        "--timestamp-key",
        action="append",
        metavar="PEM",
        help="the server's timestamp public key (`hotpatch-server timestamp-key`); devices then "
        "require a current, signed channel head with every answer (repeat for several servers)",
    )
    create.add_argument("--out", required=True, help="file to write")
    create.add_argument("--force", action="store_true", help="replace an existing file")
    _add_scope(create)
    rotate = roots_sub.add_parser(
        "rotate",
        help="sign trust root N+1 with the old and new root keys",
        description="Sign trust root N+1 with a threshold of N's root keys and of its own; "
        "--upload installs it on the server (admin key).",
    )
    _add_common(rotate)
    rotate.set_defaults(handler=signing.trust_root_rotate)
    rotate.add_argument("--current", required=True, help="the current trust root file")
    rotate.add_argument("--old-root-key", action="append", required=True, help="(repeat)")
    rotate.add_argument("--root-key", action="append", help="new root keys (default: the old)")
    rotate.add_argument("--threshold", type=int, help="default: the current threshold")
    rotate.add_argument("--publisher", action="append", help="replace the publisher keys")
    rotate.add_argument("--publisher-days", type=int)
    rotate.add_argument("--bump-epoch", action="store_true", help="start a new epoch (A4)")
    rotate.add_argument("--days", type=int)
    stamp = rotate.add_mutually_exclusive_group()
    stamp.add_argument(
        "--timestamp-key",
        action="append",
        metavar="PEM",
        help="replace the timestamp keys (default: keep the current root's)",
    )
    stamp.add_argument(
        "--no-timestamp-key",
        action="store_true",
        help="drop the timestamp keys: devices stop requiring channel heads",
    )
    rotate.add_argument("--out", required=True)
    rotate.add_argument("--force", action="store_true")
    rotate.add_argument("--upload", action="store_true", help="install it on the server")
    _add_scope(rotate)

    rel = command(
        "release",
        publish.release,
        "Build the JS bundle (npx react-native bundle) or take a prebuilt directory, "
        "optionally compile it to Hermes bytecode, then pack, sign and publish it.",
    )
    _target(rel)
    rel.add_argument("--mandatory", action=argparse.BooleanOptionalAction, default=False)
    rel.add_argument("--rollout", type=float, default=100.0, help="percent of devices (0-100)")
    _add_expiry(rel)
    rel.add_argument("--binary-range", default="*", help='native versions, e.g. "1.2.x"')
    rel.add_argument("--entry-file", default="index.js")
    rel.add_argument("--build-dir", default="build", help="where the bundle command writes")
    rel.add_argument("--project-dir", default=".", help="the React Native app (for npx, hermesc)")
    source = rel.add_mutually_exclusive_group()
    source.add_argument("--bundle-dir", help="publish this prebuilt directory as is")
    source.add_argument("--bundle-command", help="build with this command instead of npx")
    rel.add_argument("--hermes", action="store_true", help="compile to Hermes bytecode")
    rel.add_argument("--base-bytecode", help="compile against this .hbc (default: the previous)")
    rel.add_argument("--compression", type=int, default=9, choices=range(10), metavar="0-9")
    rel.add_argument("--dry-run", action="store_true", help="do everything but upload")
    rel.add_argument(
        "--expo-export", help="publish this `npx expo export` output (needs --runtime-version)"
    )
    rel.add_argument(
        "--codepush-signing-key",
        help="RSA private key (PEM) whose public key react-native-code-push apps carry as "
        "CodePushPublicKey: adds the signed CodePush/.codepushrelease",
    )
    _add_key(rel)
    _add_expo(rel)

    back = command(
        "rollback",
        channels.rollback,
        "Re-activate a version's content under a new signed manifest (the next sequence): "
        "devices never step back, they step forward to old content.",
    )
    _target(back)
    back.add_argument("--rollout", type=float, default=100.0)
    back.add_argument("--mandatory", action=argparse.BooleanOptionalAction, default=None)
    _add_expiry(back)
    _add_key(back)
    _add_expo(back)

    prom = command(
        "promote", channels.promote, "Publish a version's content from one channel on another."
    )
    _target(prom, channel=False)
    prom.add_argument("--from", dest="source", required=True, help="e.g. staging")
    prom.add_argument("--to", dest="target", required=True, help="e.g. production")
    prom.add_argument("--rollout", type=float, default=100.0)
    _add_expiry(prom)
    _add_key(prom)
    _add_expo(prom)

    diff = command(
        "patch",
        patches.patch,
        "Make the patch from one release to another and upload it; the server checks that it "
        "rebuilds the target exactly, then offers it to devices on the base. (The server also "
        "makes patches by itself after every publish.)",
    )
    diff.add_argument("--platform", required=True, choices=_PLATFORMS)
    diff.add_argument("--from", dest="source", required=True, help="the base version, e.g. 1.1.5")
    diff.add_argument("--to", dest="target", required=True, help="the target version, e.g. 1.2.0")
    diff.add_argument("--channel", default="production")

    embedded = sub.add_parser(
        "embedded",
        help="the bundle shipped in the app binary",
        description="The bundle shipped in the app binary",
    )
    embedded_sub = embedded.add_subparsers(dest="embedded_command", required=True, metavar="ACTION")
    register = embedded_sub.add_parser(
        "register",
        help="register a binary's bundle as a patch base",
        description="Send the bundle that ships inside one native version (the build's bundle "
        "output and assets) so a device's first OTA update can be a patch from it.",
    )
    _add_common(register)
    register.set_defaults(handler=patches.embedded_register)
    register.add_argument("--platform", required=True, choices=_PLATFORMS)
    register.add_argument("--native-version", required=True, help="the binary's version")
    register.add_argument("--bundle-dir", required=True, help="the bundle as the binary ships it")

    out = command(
        "rollout",
        channels.rollout,
        "Change who is offered a release (advisory: never changes what is signed).",
    )
    _target(out)
    action = out.add_mutually_exclusive_group(required=True)
    action.add_argument("--percent", type=float, help="offer it to this percent of devices")
    action.add_argument("--pause", action="store_true", help="stop offering it")
    action.add_argument("--resume", action="store_true", help="offer it again")

    dk = sub.add_parser(
        "deployment-keys",
        help="CodePush deployment keys",
        description="Keys react-native-code-push apps carry; each names a platform and channel",
    )
    dk_sub = dk.add_subparsers(dest="deployment_keys_command", required=True, metavar="ACTION")
    dk_create = dk_sub.add_parser(
        "create",
        help="create a key (printed once)",
        description="Create a CodePush deployment key for one platform and channel",
    )
    _add_common(dk_create)
    dk_create.set_defaults(handler=deployment_keys.create)
    dk_create.add_argument("--platform", required=True, choices=_PLATFORMS)
    dk_create.add_argument("--channel", default="production")
    dk_create.add_argument("--name", help="a label for people, e.g. 'Play Store build'")
    dk_list = dk_sub.add_parser(
        "list", help="list the app's keys", description="List CodePush deployment keys"
    )
    _add_common(dk_list)
    dk_list.set_defaults(handler=deployment_keys.list_keys)
    dk_revoke = dk_sub.add_parser(
        "revoke", help="revoke a key", description="Revoke a CodePush deployment key"
    )
    _add_common(dk_revoke)
    dk_revoke.set_defaults(handler=deployment_keys.revoke)
    dk_revoke.add_argument("key_id", help="the key's id, from `deployment-keys list`")

    expo = sub.add_parser(
        "expo", help="serve releases to expo-updates apps", description="Expo Updates"
    )
    expo_sub = expo.add_subparsers(dest="expo_command", required=True, metavar="ACTION")
    expo_attach = expo_sub.add_parser(
        "attach",
        help="serve a published release to expo-updates apps",
        description="Attach a release's Expo manifest (signed with the app's code-signing key "
        "when given); the release must hold an `npx expo export` build",
    )
    _add_common(expo_attach)
    expo_attach.set_defaults(handler=expo_commands.expo_attach)
    expo_attach.add_argument("release_id", type=int, help="the release's id (releases list)")
    _add_expo(expo_attach)
    expo_back = expo_sub.add_parser(
        "rollback-to-embedded",
        help="send a channel back to the bundle embedded in the binary",
        description="Stop serving this channel's Expo updates of one runtime version: devices "
        "running one go back to their embedded bundle (rollBackToEmbedded) until a newer "
        "update is published",
    )
    _add_common(expo_back)
    expo_back.set_defaults(handler=expo_commands.expo_rollback_to_embedded)
    expo_back.add_argument("--platform", required=True, choices=_PLATFORMS)
    expo_back.add_argument("--channel", default="production")
    _add_expo(expo_back, config=False)

    listing = sub.add_parser("releases", help="list releases", description="Releases")
    listing_sub = listing.add_subparsers(dest="releases_command", required=True, metavar="ACTION")
    ls = listing_sub.add_parser("list", help="list releases, newest first", description="List")
    _add_common(ls)
    ls.set_defaults(handler=channels.releases_list)
    ls.add_argument("--platform", choices=_PLATFORMS)
    ls.add_argument("--channel")
    ls.add_argument("--version")
    ls.add_argument("--limit", type=int, default=20)
    return parser


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, child in action.choices.items():
                found += _leaves(child, (*path, name))
    return found or [(path, parser)]


def _option_row(action: argparse.Action) -> str:
    flags = ", ".join(f"`{f}`" for f in action.option_strings) or f"`{action.dest}`"
    if action.choices is not None and not isinstance(action.choices, range):
        flags += " `{" + ", ".join(str(c) for c in action.choices) + "}`"
    default = action.default
    shown = "" if default in (None, False, argparse.SUPPRESS) else f"`{default}`"
    required = "yes" if action.required else ""
    text = (action.help or "").replace("|", "\\|")
    return f"| {flags} | {required} | {shown} | {text} |"


def reference_markdown() -> str:
    """Render every command, its flags and the exit codes as Markdown (the docs' CLI reference)."""
    parser = build_parser()
    lines = ["## Exit codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {int(code)} | {text} |" for code, text in EXIT_CODES.items()]
    for path, leaf in _leaves(parser, ()):
        if not path:
            continue
        lines += ["", f"## `hotpatch {' '.join(path)}`", "", leaf.description or "", ""]
        options = [
            a
            for a in leaf._actions  # noqa: SLF001 - argparse has no public walk
            if not isinstance(a, argparse._HelpAction)  # noqa: SLF001
            and a.dest not in {"api_url", "token", "app", "json", "verbose"}
        ]
        if options:
            lines += ["| option | required | default | meaning |", "|---|---|---|---|"]
            lines += [_option_row(a) for a in options]
        lines += ["", "Also: `--api-url`, `--token`, `--app`, `--json`, `--verbose`."]
    return "\n".join(lines) + "\n"


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Run the command line; return the exit code.

    ``transport`` carries the requests to the server instead of the network
    (tests run commands in-process against the server app this way).
    """
    environment = os.environ if env is None else env
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    output = Output(as_json=args.json, verbose=args.verbose)
    try:
        settings = load_settings(environment, api_url=args.api_url, token=args.token, app=args.app)
        context = Context(settings, output, environment, stdin_is_tty(), transport)
        handler: Handler = args.handler
        handler(context, args)
    except CliError as exc:
        _report(output, exc.line(), args.verbose)
        return int(exc.code)
    except HotPatchError as exc:
        _report(output, f"{type(exc).__name__}: {exc}", args.verbose)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except OSError as exc:
        _report(output, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), args.verbose)
        return int(ExitCode.USAGE)
    return int(ExitCode.OK)


def _report(output: Output, line: str, verbose: bool) -> None:  # noqa: FBT001 - internal
    if verbose:
        traceback.print_exc(file=output.err)
    output.error(line)
