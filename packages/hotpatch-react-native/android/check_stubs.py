"""Compare the adapter's React Native compile stubs with React Native's own API dump.

There is no React Native AAR on these machines, so the Android adapter
compiles against stubs this project writes (``stubs/react``). Each stub
class, and each of its public and protected members, must exist in
``ReactAndroid/api/ReactAndroid.api`` of the pinned ``react-native`` npm
package with the same JVM descriptor and the same modifiers, so a stub that
drifts from the real API fails the build. (The ``android.*`` stubs in
``stubs/platform`` cannot be checked: no Android API text is reachable here.)

    python check_stubs.py STUB_CLASSES_DIR REACT_ANDROID_API
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

_MEMBER = re.compile(r"\t(?P<mods>(?:[a-z]+ )*)(?P<kind>fun|field) (?P<name>\S+) (?P<desc>\S+)\Z")
_JAVAP_CLASS = re.compile(r"(?P<mods>(?:[a-z]+ )*)(?P<kind>class|interface) (?P<name>\S+)")
_MODIFIERS = ("public", "protected", "static", "abstract")


def _api_blocks(text: str) -> dict[str, tuple[str, set[tuple[str, str, frozenset[str]]]]]:
    """Map each class of the dump (dotted name) to its header and its members."""
    blocks: dict[str, tuple[str, set[tuple[str, str, frozenset[str]]]]] = {}
    current: set[tuple[str, str, frozenset[str]]] | None = None
    for line in text.splitlines():
        if not line.startswith("\t") and line.endswith("{"):
            header = line[:-1].strip()
            words = header.split(" : ")[0].split()
            name = words[-1].replace("/", ".").replace("$", ".")
            current = set()
            blocks[name] = (header, current)
        elif line == "}":
            current = None
        elif current is not None:
            match = _MEMBER.fullmatch(line)
            if match:
                mods = frozenset(m for m in match["mods"].split() if m in _MODIFIERS)
                current.add((match["name"], match["desc"], mods))
    return blocks


def _javap(classes: Path, name: str) -> list[str]:
    javap = shutil.which("javap")
    if javap is None:
        raise SystemExit("javap is not on PATH (a JDK is needed)")
    done = subprocess.run(  # noqa: S603 - the JDK's javap on our compiled stubs
        [javap, "-s", "-protected", "-cp", str(classes), name],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout.splitlines()


def _stub_members(lines: list[str]) -> tuple[str, set[tuple[str, str, frozenset[str]]]]:
    """Return the class line and the (name, descriptor, modifiers) of each member javap lists."""
    header = next(line for line in lines if _JAVAP_CLASS.search(line) and line.endswith("{"))
    members: set[tuple[str, str, frozenset[str]]] = set()
    for declaration, descriptor in itertools.pairwise(lines):
        if not descriptor.strip().startswith("descriptor:"):
            continue
        text = declaration.strip().rstrip(";")
        before_paren = text.split("(")[0].split()
        mods = frozenset(m for m in before_paren if m in _MODIFIERS)
        simple = before_paren[-1].rsplit(".", 1)[-1]
        owner = header.rstrip("{").split(" extends ")[0].split(" implements ")[0].split()[-1]
        is_constructor = "(" in text and before_paren[-1] == owner
        name = "<init>" if is_constructor else simple
        if "interface" in header.split("{")[0].split() and "(" in text:
            mods = mods | {"abstract"} if "static" not in mods and "default" not in text else mods
        members.add((name, descriptor.split("descriptor:", 1)[1].strip(), mods))
    return header, members


def check(stub_classes: Path, api_file: Path) -> tuple[int, list[str]]:
    """Return how many stub members were checked, and every difference found."""
    blocks = _api_blocks(api_file.read_text(encoding="utf-8"))
    problems: list[str] = []
    checked = 0
    for path in sorted(stub_classes.rglob("com/facebook/react/**/*.class")):
        relative = path.relative_to(stub_classes).with_suffix("")
        name = ".".join(relative.parts)
        if "$" in name:
            continue  # nested classes are checked with their own names below if stubbed
        block = blocks.get(name)
        if block is None:
            problems.append(f"{name}: not in ReactAndroid.api")
            continue
        api_header, api_members = block
        header, members = _stub_members(_javap(stub_classes, name))
        stub_words = set(header.split("{")[0].split())
        if "interface" in stub_words:
            stub_words.add("abstract")  # implicitly, as the dump writes it
        for word in ("abstract", "final", "interface"):
            if (word in api_header.split()) != (word in stub_words):
                problems.append(f"{name}: the API says '{api_header}', the stub '{header}'")
                break
        for member in sorted(members):
            checked += 1
            if member not in api_members:
                similar = sorted(m for m in api_members if m[0] == member[0])
                problems.append(f"{name}.{member[0]}{member[1]} {sorted(member[2])}: not in the API"
                                f"{f' (it has {similar})' if similar else ''}")  # fmt: skip
    return checked, problems


def main(argv: list[str]) -> int:
    """Check, print the differences and a count; non-zero on any difference."""
    if len(argv) != 2:
        print(__doc__)  # noqa: T201
        return 2
    checked, problems = check(Path(argv[0]), Path(argv[1]))
    for problem in problems:
        print(f"stub drift: {problem}")  # noqa: T201
    print(f"stubs: {checked} members checked against ReactAndroid.api, {len(problems)} differ")  # noqa: T201
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
