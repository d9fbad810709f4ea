"""Issue 18: the server's data directory runs out of space during an upload and a patch job.

The data directory is a small tmpfs mounted for the test (as root; skipped
elsewhere), filled with a file until only a chosen number of bytes is free.
An upload that no longer fits gets 507 ``insufficient-storage`` with
``Retry-After`` and leaves no row, blob or temporary file; a patch that no
longer fits is not made (devices get the full archive) and leaves nothing;
checks are answered throughout; once space is back, both work again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hotpatch_server.testing import Server, in_process_server

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root and mount(8)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],  # noqa: S607
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # noqa: S607


@pytest.fixture
def server(small_disk: Path, tmp_path: Path) -> Iterator[Server]:
    """The app with its data directory on the small disk (its database elsewhere)."""
    with in_process_server(
        small_disk / "data", database_url=f"sqlite+aiosqlite:///{tmp_path / 'hotpatch.db'}"
    ) as harness:
        yield harness


def _fill(disk: Path, leave: int) -> Path:
    """Write a file on ``disk`` so that about ``leave`` bytes stay free; return it."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    filler.write_bytes(bytes(max(stat.f_bavail * stat.f_frsize - leave, 0)))
    return filler


def _blobs(server: Server) -> list[Path]:
    return sorted(p for p in (server.settings.data_dir / "blobs").rglob("*") if p.is_file())


def _tmp(server: Server) -> list[Path]:
    tmp = server.settings.data_dir / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def _pages(length: int) -> int:
    return -(-length // PAGE) * PAGE


def test_an_upload_that_does_not_fit_gets_507_and_keeps_nothing(
    server: Server, small_disk: Path
) -> None:
    """507 with Retry-After; no row, blob or temp file; checks still answered; later it fits."""
    server.published(1)
    rows, blobs = server.release_rows(), _blobs(server)
    filler = _fill(small_disk, leave=64 * 1024)
    built = server.build(sequence=2, files={"index.android.bundle": os.urandom(512 * 1024)})
    response = server.publish(built)
    assert response.status_code == httpx.codes.INSUFFICIENT_STORAGE, response.text
    assert response.json()["type"].endswith("/insufficient-storage")
    assert response.headers["retry-after"] == "60"
    assert (server.release_rows(), _blobs(server), _tmp(server)) == (rows, blobs, [])
    assert server.check()["sequence"] == 1
    filler.unlink()
    assert server.publish(built).status_code == httpx.codes.CREATED
    assert server.check()["sequence"] == 2


def test_a_patch_that_does_not_fit_is_not_made_and_leaves_nothing(
    server: Server, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The release is published; its patch is skipped; with space back, the next one is made."""
    bundle = os.urandom(300_000)
    v1 = server.published(1, files={"index.android.bundle": bundle})
    v2 = server.build(
        sequence=2, version="1.0.2",
        files={"index.android.bundle": bundle[:200_000] + os.urandom(100_000)},
    )  # fmt: skip
    # Room for the upload (page-rounded) and a little, not for a ~100 KB patch.
    filler = _fill(small_disk, leave=_pages(len(v2.archive)) + 2 * PAGE)
    published = server.publish(v2)
    assert published.status_code == httpx.codes.CREATED, published.text
    assert "patch" not in server.check("device-1", currentManifestId=v1["manifestId"])
    assert "no patches to release 2: the disk is full" in caplog.text
    assert _tmp(server) == []
    assert len(_blobs(server)) == 2  # the two archives, no patch
    filler.unlink()
    v3 = server.published(3, files={"index.android.bundle": bundle[:250_000] + os.urandom(50_000)})
    answer = server.check("device-1", currentManifestId=published.json()["manifestId"])
    assert answer["sequence"] == v3["sequence"]
    assert answer["patch"]["baseManifestId"] == published.json()["manifestId"]
