#!/usr/bin/env python3
"""Benchmark: a backup through the whole pipeline (local source -> tar -> zstd -> age ->
fsynced file) against the stock tools on the same tree in the same run:
``tar -cf - DIR | zstd -3 -T1 | age -r RECIPIENT > FILE``, then fsync.

Robust to a noisy (shared) machine: for each tree size (100 MiB and 1 GiB: many small
files plus some large ones) the two pipelines alternate over --rounds rounds (at least 3;
which one goes first alternates too), each run starting after a `sync` so that neither
pays for the other's write-back. It prints, per pipeline, the median time and its spread
(min-max), the CPU seconds, the output size, and the ratio of the median throughputs,
with the spread of the per-round ratios. Each of our runs is a fresh process, whose peak
RSS (zstd's worker threads included) is reported for both sizes. On a machine loaded by
other work, the stock tools' three piped processes were seen to get more CPU time than one
process (`cat F | zstd` beat `zstd F`): read the CPU seconds beside the ratio there.

Targets (issue 18): ratio of medians at least 0.8 on the 1 GiB tree; peak RSS under 100 MB
and flat from 100 MiB to 1 GiB. The last line printed is one JSON object.

Usage: .venv/bin/python scripts/bench/backup.py [--sizes-mib 100,1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SMALL_FILE = 16 * 1024
LARGE_FILE = 64 * 1024 * 1024
MIN_ROUNDS = 3

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from agent.backup.archive import write_archive
from drivers.backup_source import LocalSource

source, store, recipient = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
result = write_archive(LocalSource(source), store, "bench.tar.zst.age", [recipient], {})
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "bytes_out": result.size,
                  "files": result.files, "peak_rss_mb": after.ru_maxrss / 1024}))
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


def ours(source: Path, store: Path, recipient: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(store), recipient],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    (store / "bench.tar.zst.age").unlink()
    return result


def stock(source: Path, target: Path, recipient: str) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        f"tar -cf - -C {source} . | zstd -3 -q -T1 | age -r {recipient} > {target}",
        shell=True,
        check=True,
        executable="/bin/bash",
    )
    with target.open("rb") as fh:
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    size = target.stat().st_size
    target.unlink()
    return {"seconds": elapsed, "cpu_seconds": cpu, "bytes_out": size}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def measure(source: Path, work: Path, recipient: str, rounds: int) -> dict[str, Any]:
    """Both pipelines, alternating, `rounds` times; our runs and the stock runs listed."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "stock": []}
    store = work / "store"
    store.mkdir()
    for n in range(rounds):
        order = ("ours", "stock") if n % 2 == 0 else ("stock", "ours")
        for which in order:
            subprocess.run(["sync"], check=True)
            if which == "ours":
                runs["ours"].append(ours(source, store, recipient))
            else:
                runs["stock"].append(stock(source, work / "stock.age", recipient))
    store.rmdir()
    return runs


def report(
    mib: int, size: int, files: int, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    mine = [r["seconds"] for r in runs["ours"]]
    theirs = [r["seconds"] for r in runs["stock"]]
    ratio = statistics.median(theirs) / statistics.median(mine)  # = ratio of median MiB/s
    per_round = sorted(t / m for m, t in zip(mine, theirs, strict=True))
    rss = max(r["peak_rss_mb"] for r in runs["ours"])
    print(f"{mib:>5} MiB, {files} files, {len(mine)} alternating rounds")
    for name, label in (("ours", "pbx-agent"), ("stock", "tar|zstd -3|age")):
        seconds = [r["seconds"] for r in runs[name]]
        speeds = [size / s / 2**20 for s in seconds]
        cpu = [r["cpu_seconds"] for r in runs[name]]
        out = statistics.median(r["bytes_out"] for r in runs[name]) / 2**20
        print(
            f"  {label:<16} {spread(seconds)} s  {spread(speeds)} MiB/s  "
            f"CPU {spread(cpu)} s  out {out:.1f} MiB"
        )
    print(
        f"  ratio of medians {ratio:.2f} (per-round {per_round[0]:.2f}-{per_round[-1]:.2f}), "
        f"pbx-agent peak RSS {rss:.1f} MB"
    )
    return {
        "ratio": ratio,
        "ratio_spread": [round(per_round[0], 2), round(per_round[-1], 2)],
        "peak_rss_mb": rss,
        "median_mib_s": round(size / statistics.median(mine) / 2**20, 1),
        "stock_median_mib_s": round(size / statistics.median(theirs) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes-mib", default="100,1024")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS}: a median needs a few runs")
    for tool in ("age", "age-keygen", "zstd", "tar"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (scripts/test installs age and zstd as root)")
    key = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    recipient = next(line.split(": ")[1] for line in key.splitlines() if "public key" in line)
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-bench-backup-", dir="/var/tmp") as tmp:
        for mib in (int(s) for s in args.sizes_mib.split(",")):
            work = Path(tmp) / f"{mib}"
            source = work / "src"
            size = make_tree(source, mib * 1024 * 1024)
            runs = measure(source, work, recipient, args.rounds)
            results[mib] = report(mib, size, runs["ours"][0]["files"], runs)
            shutil.rmtree(work)
    largest = max(results)
    summary: dict[str, Any] = {
        "throughput_ratio_vs_stock": round(results[largest]["ratio"], 2),
        "ratio_spread": results[largest]["ratio_spread"],
        "rounds": args.rounds,
        "tree_mib": largest,
        "median_mib_s": results[largest]["median_mib_s"],
        "stock_median_mib_s": results[largest]["stock_median_mib_s"],
    }
    for mib, result in sorted(results.items()):
        label = "1gib" if mib == 1024 else f"{mib}mib"
        summary[f"peak_rss_mb_{label}"] = round(result["peak_rss_mb"], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
