"""Benchmark the patch engine on every pair of ../shared/corpus against four baselines.

For each pair (old file -> new file) and each engine, a fresh child process
makes the patch and applies it (checking the result byte for byte) and
reports the patch size, the make and apply times, and the peak resident
memory: the child's own ``VmHWM`` for the Python engines (interpreter
included), GNU time's maximum RSS of the command for zstd and xdelta3.
(``ru_maxrss`` is not used: Linux carries a parent's peak across fork and
exec.) Engines:

- **hotpatch**: :func:`hotpatch_diff.make_patch` / ``apply_patch`` (the
  whole container, header included);
- **bsdiff4** alone (PyPI; bzip2-compressed);
- **zstd** ``--patch-from -19 --long`` (the zstd command);
- **xdelta3** ``-9`` (the xdelta3 command);
- **HDiffPatch** (PyPI ``hdiffpatch``, zstd-compressed).

"full" is the size of the new file in a level-9 zip: what a device downloads
without a patch. Prints a table and, with ``--markdown FILE``, writes it as a
docs page. Targets: hotpatch <= 1.10x the best baseline on every pair and
<= 1.0x on most; >= 95 % of the full download saved on the bug-fix pairs.

Usage: python bench/diff_corpus.py [--markdown docs/diff-benchmark.md]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus import corpus_dir
from procstatus import status_kib

CORPUS = corpus_dir()
ENGINES = ("hotpatch", "bsdiff4", "zstd", "xdelta3", "hdiffpatch")
#: Pairs whose change is a small bug fix (the >= 95 % saving target).
BUG_FIX = {"rn/index.android.bundle", "rn/main.jsbundle", "rn/index.android.hbc",
           "rn/main.jsbundle.hbc", "rn/index.android.hbc (base-bytecode)"}  # fmt: skip


def pairs() -> list[tuple[str, Path, Path]]:
    """Every old -> new pair of the corpus."""
    rn = CORPUS / "rn"
    found = [
        (f"rn/{name}", rn / "v1" / name, rn / "v2" / name)
        for name in (
            "index.android.bundle",
            "main.jsbundle",
            "index.android.hbc",
            "main.jsbundle.hbc",
        )
    ]
    found.append(
        ("rn/index.android.hbc (base-bytecode)", rn / "v1" / "index.android.hbc",
         rn / "v2" / "index.android.delta-base-v1.hbc")
    )  # fmt: skip
    for library in sorted((CORPUS / "npm").iterdir()):
        files = sorted(p for p in library.rglob("*") if p.is_file())
        if len(files) == 2:
            found.append((f"npm/{library.name}", files[0], files[1]))
    return found


# --- the child: one engine, one pair ---------------------------------------


def _entry(data: bytes) -> Any:
    from hotpatch_core.archive import FileEntry  # noqa: PLC0415

    return FileEntry("index.android.bundle", hashlib.sha256(data).hexdigest(), len(data))


def child(engine: str, old_path: Path, new_path: Path, work: Path) -> dict[str, float]:
    """Make and apply one patch; return its size and timings."""
    old, new = old_path.read_bytes(), new_path.read_bytes()
    patch_file, out_file = work / "patch", work / "out"
    peaks: list[int] = []
    if engine == "hotpatch":
        from hotpatch_core.archive import MemorySink  # noqa: PLC0415
        from hotpatch_diff import PatchSide, apply_patch, make_patch  # noqa: PLC0415

        base = PatchSide("a" * 64, (_entry(old),), lambda _e: old)
        target = PatchSide("b" * 64, (_entry(new),), lambda _e: new)
        started = time.perf_counter()
        patch, _ = make_patch(base, target)
        made = time.perf_counter()
        sink = MemorySink()
        apply_patch(patch, base, target.manifest_id, target.files, sink)
        result = sink.files["index.android.bundle"]
        size = len(patch)
    elif engine == "bsdiff4":
        import bsdiff4  # noqa: PLC0415

        started = time.perf_counter()
        patch = bsdiff4.diff(old, new)
        made = time.perf_counter()
        result = bsdiff4.patch(old, patch)
        size = len(patch)
    elif engine == "hdiffpatch":
        import hdiffpatch  # noqa: PLC0415

        started = time.perf_counter()
        patch = hdiffpatch.diff(old, new, hdiffpatch.COMPRESSION_ZSTD, validate=False)
        made = time.perf_counter()
        result = hdiffpatch.apply(old, patch)
        size = len(patch)
    elif engine == "zstd":
        started = time.perf_counter()
        peaks.append(_timed(["zstd", "-19", "--long=27", "-q", "-f", f"--patch-from={old_path}",
                             str(new_path), "-o", str(patch_file)], work))  # fmt: skip
        made = time.perf_counter()
        peaks.append(_timed(["zstd", "-d", "--long=27", "-q", "-f", f"--patch-from={old_path}",
                             str(patch_file), "-o", str(out_file)], work))  # fmt: skip
        result, size = out_file.read_bytes(), patch_file.stat().st_size
    else:  # xdelta3
        started = time.perf_counter()
        peaks.append(_timed(["xdelta3", "-9", "-e", "-f", "-s", str(old_path), str(new_path),
                             str(patch_file)], work))  # fmt: skip
        made = time.perf_counter()
        peaks.append(_timed(["xdelta3", "-d", "-f", "-s", str(old_path), str(patch_file),
                             str(out_file)], work))  # fmt: skip
        result, size = out_file.read_bytes(), patch_file.stat().st_size
    applied = time.perf_counter()
    if result != new:
        raise SystemExit(f"{engine} did not reproduce {new_path}")
    peak_kb = max(peaks) if peaks else status_kib("VmHWM")
    return {
        "size": size,
        "make": made - started,
        "apply": applied - made,
        "peak_mb": peak_kb / 1024,
    }


def _timed(argv: list[str], work: Path) -> int:
    """Run a command under GNU time; return its maximum resident set size in KiB."""
    report = work / "time.txt"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *argv], check=True)
    return int(report.read_text().split()[-1])


# --- the parent ---------------------------------------------------------------


def measure(engine: str, old: Path, new: Path) -> dict[str, float]:
    """Run the child for ``engine`` and collect its numbers."""
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [sys.executable, __file__, "--child", engine, str(old), str(new), work],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{engine} failed on {new}: {done.stderr[-500:]}")
        numbers: dict[str, float] = json.loads(done.stdout)
        return numbers


def full_size(new: Path) -> int:
    """Return the size of ``new`` in a level-9 zip (a full update)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("index.android.bundle", new.read_bytes())
    return len(out.getvalue())


def main() -> None:
    """Run every engine on every pair; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "OLD", "NEW", "WORK"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.child:
        engine, old, new, work = args.child
        print(json.dumps(child(engine, Path(old), Path(new), Path(work))))
        return
    for tool in ("zstd", "xdelta3"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"the {tool} baseline needs the {tool} command: apt-get install {tool}"
            )
    rows: list[str] = []
    header = (
        "| pair | new size | full | hotpatch | bsdiff4 | zstd --patch-from | xdelta3 -9 | "
        "HDiffPatch | hotpatch / best | saved |"
    )
    rows += [header, "|" + "---|" * 10]
    timing = ["| pair | engine | make s | apply s | peak MB |", "|---|---|---:|---:|---:|"]
    ratios: list[float] = []
    savings: list[tuple[str, float]] = []
    for name, old, new in pairs():
        results = {engine: measure(engine, old, new) for engine in ENGINES}
        best = min(results[e]["size"] for e in ENGINES if e != "hotpatch")
        ours = results["hotpatch"]["size"]
        full = full_size(new)
        ratio = ours / best
        saved = 1 - ours / full
        ratios.append(ratio)
        if name in BUG_FIX:
            savings.append((name, saved))
        cells = " | ".join(f"{int(results[e]['size']):,}" for e in ENGINES)
        rows.append(
            f"| {name} | {new.stat().st_size:,} | {full:,} | {cells} | **{ratio:.2f}** | "
            f"{saved * 100:.2f} % |"
        )
        for engine in ENGINES:
            r = results[engine]
            timing.append(
                f"| {name} | {engine} | {r['make']:.3f} | {r['apply']:.3f} | {r['peak_mb']:.0f} |"
            )
        print(f"{name:40} hotpatch {ours:>8,} best baseline {int(best):>8,}  ratio {ratio:.2f}  "
              f"saved {saved * 100:6.2f} %", flush=True)  # fmt: skip
    worst = max(ratios)
    at_most_one = sum(r <= 1.0 for r in ratios)
    verdict = (
        f"hotpatch / best baseline: worst {worst:.2f} (target <= 1.10), <= 1.00 on "
        f"{at_most_one} of {len(ratios)} pairs; bug-fix pairs saved "
        + ", ".join(f"{n} {s * 100:.2f} %" for n, s in savings)
        + " (target >= 95 %)"
    )
    print(verdict)
    if args.markdown:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        args.markdown.write_text(
            "# Differential update benchmark\n\n"
            "Generated by `python bench/diff_corpus.py --markdown docs/diff-benchmark.md` "
            f"(also `python3 -m nox -s bench -- diff`) on {stamp}, on the project's 2-core "
            "machine. Sizes in bytes; *full* is the new file in a level-9 zip, what a device "
            "downloads without a patch; *saved* is 1 - hotpatch / full. Each engine made and "
            "applied its patch in a fresh process, and its output was checked byte for byte.\n\n"
            + "\n".join(rows)
            + f"\n\n{verdict}.\n\n## Time and memory\n\nMake and apply times include process "
            "start-up for the command-line tools (zstd, xdelta3); peak MB is the resident memory "
            "peak of the process that made and applied the patch: the Python process's own "
            "VmHWM for hotpatch, bsdiff4 and HDiffPatch (its interpreter, about 10 MB, and both "
            "files included), GNU time's maximum RSS for the zstd and xdelta3 commands.\n\n"
            + "\n".join(timing)
            + "\n"
        )


if __name__ == "__main__":
    main()
