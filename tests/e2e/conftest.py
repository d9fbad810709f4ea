"""Fixtures of the end-to-end tests: a bare clone of this repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_clone(tmp_path: Path) -> Path:
    """Clone this checkout into an empty temporary directory, with the working tree's changes.

    Nothing is beside the clone, so whatever runs there can only use what the
    repository carries. Uncommitted changes are applied on top, so the test
    checks what is being developed.
    """
    clone = tmp_path / "hotpatch"
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the bare-clone tests clone the repository")
    subprocess.run(
        [git, "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    diff = subprocess.run(
        [git, "diff", "HEAD", "--binary"], cwd=REPO, check=True, capture_output=True, timeout=60
    ).stdout
    if diff:
        subprocess.run(
            [git, "apply", "--whitespace=nowarn"], cwd=clone, input=diff, check=True, timeout=60
        )
    untracked = subprocess.run(
        [git, "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    for name in filter(None, untracked.decode().split("\0")):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    return clone
