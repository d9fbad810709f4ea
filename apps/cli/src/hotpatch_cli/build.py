"""Building the bundle: Metro through ``npx react-native bundle``, and optionally Hermes bytecode.

The bundle command's output is streamed to the terminal as it runs; a
failure reports its exit code and the last lines it printed.
"""

from __future__ import annotations

import collections
import platform as host
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from hotpatch_cli.errors import BuildError, UsageError
from hotpatch_core.manifest import Platform

__all__ = [
    "HERMES_MAGIC",
    "compile_hermes",
    "default_bundle_command",
    "find_hermesc",
    "run_bundle_command",
]

#: The first eight bytes of every Hermes bytecode file.
HERMES_MAGIC: Final = bytes.fromhex("c61fbc03c103191f")
_TAIL: Final = 20


def default_bundle_command(platform: Platform, entry_file: str, build_dir: Path) -> list[str]:
    """Return the ``npx react-native bundle`` command for ``platform``."""
    return [
        "npx",
        "react-native",
        "bundle",
        "--platform",
        platform.value,
        "--dev",
        "false",
        "--entry-file",
        entry_file,
        "--bundle-output",
        str(build_dir / platform.entry_file),
        "--assets-dest",
        str(build_dir),
    ]


def run_bundle_command(command: Sequence[str] | str, cwd: Path, *, quiet: bool) -> None:
    """Run the bundle command in ``cwd``, streaming its output (to stderr) unless ``quiet``."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise UsageError("the bundle command is empty")
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise BuildError(
            f"{argv[0]!r} was not found",
            hint="install Node.js (for npx) or pass --bundle-dir with a prebuilt bundle",
        )
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
    try:
        process = subprocess.Popen(  # noqa: S603 - the user's own build command, by design
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise BuildError(f"cannot run {argv[0]!r}: {exc}") from None
    assert process.stdout is not None  # noqa: S101 - PIPE was asked for
    for line in process.stdout:
        tail.append(line.rstrip())
        if not quiet:
            sys.stderr.write(f"  | {line}")
            sys.stderr.flush()
    code = process.wait()
    if code != 0:
        last = " / ".join(line for line in tail if line)[-600:]
        raise BuildError(
            f"the bundle command exited with {code}: {last or 'no output'}",
            hint="run it by hand to see the whole log",
        )


def find_hermesc(project_dir: Path) -> Path:
    """Return the ``hermesc`` that ``react-native`` ships in ``project_dir``'s node_modules."""
    folder = {"Linux": "linux64-bin", "Darwin": "osx-bin", "Windows": "win64-bin"}.get(
        host.system(), "linux64-bin"
    )
    name = "hermesc.exe" if host.system() == "Windows" else "hermesc"
    candidate = project_dir / "node_modules" / "react-native" / "sdks" / "hermesc" / folder / name
    if not candidate.is_file():
        raise BuildError(
            f"no hermesc at {candidate}",
            hint="run npm ci in the app, or drop --hermes",
        )
    return candidate


def compile_hermes(hermesc: Path, bundle: Path, *, base_bytecode: Path | None) -> None:
    """Compile ``bundle`` (JavaScript) to Hermes bytecode in place.

    With ``base_bytecode`` (the previous release's bytecode), hermesc keeps
    its string table order stable so byte-level patches stay small.
    """
    output = bundle.with_name(bundle.name + ".hbc")
    argv = [str(hermesc), "-w", "-emit-binary", "-O", "-out", str(output)]
    if base_bytecode is not None:
        argv.append(f"-base-bytecode={base_bytecode}")
    argv.append(str(bundle))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BuildError(
            f"hermesc exited with {done.returncode}: {done.stderr.strip()[-600:] or 'no output'}"
        )
    output.replace(bundle)


def is_hermes_bytecode(path: Path) -> bool:
    """Return whether ``path`` starts with the Hermes bytecode magic."""
    with path.open("rb") as handle:
        return handle.read(len(HERMES_MAGIC)) == HERMES_MAGIC
