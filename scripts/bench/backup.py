#!/usr/bin/env python3
"""Benchmark: a backup through the whole pipeline (local source -> tar -> zstd -> age ->
fsynced file) for trees of 100 MiB and 1 GiB (many small files plus some large ones), in a
fresh process each, against the stock tools on the same data in the same run:
``tar -cf - DIR | zstd -3 | age -r RECIPIENT > FILE``.

Targets: throughput at least 0.5 of the stock pipeline (aim for 0.8); peak RSS under 100 MB,
the same for 100 MiB and 1 GiB. The last line printed is one JSON object.

Usage: .venv/bin/python scripts/bench/backup.py [--sizes-mib 100,1024] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL_FILE = 16 * 1024
LARGE_FILE = 64 * 1024 * 1024

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from agent.backup.archive import write_archive
from drivers.backup_source import LocalSource

source, store, recipient = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
result = write_archive(LocalSource(source), store, "bench.tar.zst.age", [recipient], {})
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "bytes_out": result.size, "files": result.files,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_tree(root: Path, total: int) -> int:
    """Half the bytes in 16 KiB config-like files, half in 64 MiB (or smaller) blobs;
    a mix of compressible text and random data, as PBX configs and databases are."""
    rng = random.Random(42)
    words = [f"option{n} = value{n};".encode() for n in range(500)]
    written, index = 0, 0
    small_budget = total // 2
    while written < small_budget:
        folder = root / f"conf{index // 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        text = b"\n".join(rng.choice(words) for _ in range(SMALL_FILE // 16))[: SMALL_FILE // 2]
        (folder / f"file{index:05d}.conf").write_bytes(text + os.urandom(SMALL_FILE // 2))
        written += SMALL_FILE
        index += 1
    blob = 0
    while written < total:
        size = min(LARGE_FILE, total - written)
        with (root / f"blob{blob}.db").open("wb") as fh:
            remaining = size
            while remaining:
                chunk = min(remaining, 8 * 1024 * 1024)
                fh.write(os.urandom(chunk // 2) + bytes(chunk - chunk // 2))
                remaining -= chunk
        written += size
        blob += 1
    return written


def ours(source: Path, store: Path, recipient: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(store), recipient],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def stock(source: Path, target: Path, recipient: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        f"tar -cf - -C {source} . | zstd -3 -q -T1 | age -r {recipient} > {target}",
        shell=True,
        check=True,
        executable="/bin/bash",
    )
    with target.open("rb") as fh:
        os.fsync(fh.fileno())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="100,1024")
    args = parser.parse_args()
    for tool in ("age", "age-keygen", "zstd", "tar"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (scripts/test installs age and zstd as root)")
    key = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    recipient = next(line.split(": ")[1] for line in key.splitlines() if "public key" in line)
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-bench-backup-", dir="/var/tmp") as tmp:
        for mib in (int(s) for s in args.sizes_mib.split(",")):
            source, store = Path(tmp) / f"src{mib}", Path(tmp) / f"store{mib}"
            store.mkdir()
            size = make_tree(source, mib * 1024 * 1024)
            subprocess.run(["sync"], check=True)
            mine = ours(source, store, recipient)
            reference = stock(source, Path(tmp) / f"stock{mib}.age", recipient)
            ratio = (size / mine["seconds"]) / (size / reference)
            results[mib] = {**mine, "stock_seconds": reference, "ratio": ratio}
            speed, stock_speed = size / mine["seconds"] / 2**20, size / reference / 2**20
            print(
                f"{mib:>5} MiB ({mine['files']} files): pbx-agent {speed:.0f} MiB/s, "
                f"stock tar|zstd|age {stock_speed:.0f} MiB/s, ratio {ratio:.2f}, "
                f"peak RSS {mine['peak_rss_mb']:.1f} MB"
            )
            shutil.rmtree(source)
            shutil.rmtree(store)
    largest = max(results)
    summary = {"throughput_ratio_vs_stock": round(results[largest]["ratio"], 2)}
    if 100 in results:
        summary["peak_rss_mb_100mib"] = round(results[100]["peak_rss_mb"], 1)
    if 1024 in results:
        summary["peak_rss_mb_1gib"] = round(results[1024]["peak_rss_mb"], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
