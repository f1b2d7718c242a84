#!/usr/bin/env python3
"""Benchmark: counting billable users on generated offices served by the PBX simulators over
TCP, each count in a fresh process (scripts/bench/count_probe.py).

Asterisk, the offices issue 19 was measured on (`count_offices.write_office`: endpoints of 40
effective options, auth and AOR from templates, 90 % with mailboxes, a hint and a dial line
each, N/100 queues, 10 % registered), at 10,000 and 50,000 extensions, the simulator charging
each GetConfig what Asterisk's re-read of the file costs (`drivers/asterisk/sim/cost.py`). For
each size, alternated `--runs` times:
  - agent: the driver's inventory and the seat rules in process, as the daemon runs them;
  - floor: a minimal client sending the same AMI actions (recorded from the agent) with the
    same concurrency and reading each answer to its end;
Then at 10,000 (`--daemon-size`), the daemon path: `--daemon-runs` pairs of
`pbx-agent count --json` against a running, connected daemon and an in-process count right
before or after it (in turn); its extra time is the command's wall time minus that count's.
Printed: medians and spread (min-max) of each, `agent_over_floor` (median of the per-run
ratios), peak RSS and the RSS the count added per extension. A 10,000-extension office with
10 options per endpoint (100,000 options: a quarter of the answer) shows whether memory
follows the extensions or the largest answer.

Also the classic offices (100, 1,000, 10,000 small endpoints, apps, most registered, answers
from memory) and FreeSWITCH (10,000 users over 20 domains).

Targets (2 cores): agent_over_floor <= 1.3 at 10k and 50k; daemon extra <= 0.3 s at 10k; 50k
counted right in < 250 MB peak RSS; RSS per extension of the 40-option office within 20 % of
the 10-option one's (and of the 10k office's at 50k); classic 10k < 3 s, < 150 MB,
t(10k)/t(1k) <= 12; FreeSWITCH 10k users < 3 s, < 150 MB. The last line is one JSON object.

Usage: .venv/bin/python scripts/bench/count.py [--realistic 10000,50000] [--runs 5]
       [--sizes 100,1000,10000] [--pbx asterisk,freeswitch] [--daemon-size 10000]
       [--daemon-runs 11]
       [--freeswitch-users 10000] [--freeswitch-domains 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from count_offices import (
    FS_PASSWORD,
    SECRET,
    write_classic_office,
    write_freeswitch_office,
    write_office,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "count_probe.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def simulator(pbx: str, office: Path, start_timeout: float = 900) -> Iterator[int]:
    """`pbx-agent simulate PBX` serving `office`; yields its port."""
    port = free_port()
    command = [sys.executable, "-m", "agent", "simulate", pbx, "--office", str(office)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                error = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"simulator exited: {error}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("simulator did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def probe(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"probe {args[0]} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def spread(values: Sequence[float], unit: str = "s", digits: int = 3) -> str:
    """`median (min-max, n=N)`."""
    return (
        f"{statistics.median(values):.{digits}f} {unit} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f}, n={len(values)})"
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# -- the daemon path -------------------------------------------------------------------------


DAEMON_CONFIG = """site_id = "bench"
[pbx]
driver = "asterisk"
[pbx.ami]
host = "127.0.0.1"
port = {port}
username = "agent"
secret_file = "ami-secret"
connect_timeout = 30.0
action_timeout = 120.0
[poll]
interval = 86400
[counting]
interval = 604800
[state]
dir = "state"
[control]
socket = "state/control.sock"
[logging]
level = "warning"
format = "json"
"""


@contextlib.contextmanager
def daemon(workdir: Path, port: int) -> Iterator[Path]:
    """A running daemon connected to the simulator, its first count done; yields its config."""
    workdir.mkdir(parents=True)
    (workdir / "ami-secret").write_text(SECRET + "\n")
    (workdir / "ami-secret").chmod(0o600)
    (workdir / "state").mkdir(mode=0o750)
    config = workdir / "agent.toml"
    config.write_text(DAEMON_CONFIG.format(port=port))
    log = (workdir / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 300
        while not (workdir / "state/control.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (workdir / "daemon.log").read_text()
                raise SystemExit(f"the daemon did not start: {log_text}")
            time.sleep(0.2)
        cli_count(config)  # waits for the start-up count, then counts once
        yield config
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def daemon_pair(config: Path, port: int, size: int, daemon_first: bool) -> tuple[float, float]:
    """`pbx-agent count --json` through the daemon and an in-process count, one right after
    the other: (the command's wall time, the in-process count's)."""
    in_process = 0.0
    if not daemon_first:
        in_process = probe("agent", str(port), SECRET)["seconds"]
    elapsed, billable = cli_count(config)
    if billable != size:
        raise SystemExit(f"daemon counted {billable}, expected {size}")
    if daemon_first:
        in_process = probe("agent", str(port), SECRET)["seconds"]
    return elapsed, in_process


def cli_count(config: Path) -> tuple[float, int]:
    """`pbx-agent count --json` as a technician runs it: wall time and the billable count."""
    started = time.perf_counter()
    command = Path(sys.executable).parent / "pbx-agent"
    out = subprocess.run(
        [str(command), "count", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"pbx-agent count failed: {out.stderr[-2000:]}")
    return elapsed, int(json.loads(out.stdout)["billable"])


# -- Asterisk: the issue-19 offices -----------------------------------------------------------


def measure_office(
    size: int, options: int, runs: int, workdir: Path, *, floor: bool, daemon_runs: int = 0
) -> dict[str, Any]:
    office = write_office(workdir / f"office-{size}x{options}", size, options=options)
    plan = workdir / f"plan-{size}x{options}.json"
    agents: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    pairs: list[tuple[float, float]] = []
    with simulator("asterisk", office) as port:
        warm = probe("agent", str(port), SECRET, "--record", str(plan))  # also warms the simulator
        if warm["billable"] != size:
            raise SystemExit(f"{size}x{options}: counted {warm['billable']}, expected {size}")
        for _ in range(runs):
            agents.append(probe("agent", str(port), SECRET))
            if floor:
                floors.append(probe("floor", str(port), SECRET, str(plan)))
        if daemon_runs:
            with daemon(workdir / f"daemon-{size}", port) as config:
                # the daemon's count first in every other pair: the machine's drift over a
                # pair adds to half the differences and takes from the other half
                pairs = [daemon_pair(config, port, size, n % 2 == 0) for n in range(daemon_runs)]
    if any(a["billable"] != size for a in agents):
        raise SystemExit(f"{size}x{options}: a run counted {[a['billable'] for a in agents]}")
    seconds = [a["seconds"] for a in agents]
    rss = [a["peak_rss_mb"] for a in agents]
    growth = [(a["peak_rss_mb"] - a["baseline_rss_mb"]) * 1024 / size for a in agents]
    result: dict[str, Any] = {
        "seconds": median(seconds),
        "peak_rss_mb": median(rss),
        "rss_kb_per_extension": median(growth),
        "actions": warm["actions"],
    }
    line = (
        f"{size:>6} extensions x {options} options: agent {spread(seconds)}, "
        f"peak RSS {spread(rss, 'MB', 1)}, {median(growth):.2f} KB/extension, "
        f"{size} seats, {warm['actions']} AMI actions"
    )
    if floors:
        ratios = [a["seconds"] / f["seconds"] for a, f in zip(agents, floors, strict=True)]
        result["floor_seconds"] = median([f["seconds"] for f in floors])
        result["agent_over_floor"] = median(ratios)
        result["answer_mb"] = floors[0]["bytes"] / 1e6
        line += (
            f"\n{'':>8}floor {spread([f['seconds'] for f in floors])} "
            f"({floors[0]['bytes'] / 1e6:.1f} MB of answers); "
            f"agent_over_floor {spread(ratios, '', 2)}"
        )
    if pairs:
        clis = [cli for cli, _ in pairs]
        extra = [cli - in_process for cli, in_process in pairs]
        result["daemon_seconds"] = median(clis)
        result["daemon_extra_seconds"] = median(extra)
        line += f"\n{'':>8}pbx-agent count --json {spread(clis)}; daemon extra {spread(extra)}"
    print(line, flush=True)
    return result


# -- Asterisk: the classic offices ------------------------------------------------------------


def measure_classic(size: int, runs: int, workdir: Path) -> dict[str, Any]:
    office = write_classic_office(workdir / f"classic-{size}", size)
    with simulator("asterisk", office) as port:
        probe("agent", str(port), SECRET)  # the simulator builds its answers once
        results = [probe("agent", str(port), SECRET) for _ in range(runs)]
    if any(r["billable"] != size for r in results):
        raise SystemExit(f"classic {size}: counted {[r['billable'] for r in results]}")
    return summary(f"{size:>6} extensions (classic)", results, f"{size} seats")


def summary(label: str, results: list[dict[str, Any]], tail: str) -> dict[str, Any]:
    """Print the medians and spread of `results`; return the medians."""
    seconds = [r["seconds"] for r in results]
    rss = [r["peak_rss_mb"] for r in results]
    print(f"{label}: {spread(seconds)}, peak RSS {spread(rss, 'MB', 1)}, {tail}", flush=True)
    return {"seconds": median(seconds), "peak_rss_mb": median(rss)}


def measure_freeswitch(users: int, domains: int, runs: int, workdir: Path) -> dict[str, Any]:
    office, expected = write_freeswitch_office(workdir / f"fs-{users}", users, domains)
    with simulator("freeswitch", office) as port:
        results = [probe("freeswitch", str(port), FS_PASSWORD) for _ in range(runs)]
    for r in results:
        if r["billable"] != expected or r["tenants"] != domains:
            raise SystemExit(
                f"freeswitch: counted {r['billable']} in {r['tenants']} tenants, "
                f"expected {expected} in {domains}"
            )
    label = f"{users:>6} FreeSWITCH users over {domains} domains"
    return summary(label, results, f"{expected} seats")


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realistic", default="10000,50000", help="issue-19 office sizes")
    parser.add_argument("--options", type=int, default=40, help="options per endpoint")
    parser.add_argument(
        "--runs", type=int, default=5, help="alternated runs per size (figures: medians)"
    )
    parser.add_argument("--daemon-size", type=int, default=10000)
    parser.add_argument(
        "--daemon-runs",
        type=int,
        default=11,
        help="pairs of a count through the daemon and one in process (figure: the median "
        "difference; more pairs than --runs: a difference of two counts varies more than one)",
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="classic office sizes")
    parser.add_argument("--pbx", default="asterisk,freeswitch")
    parser.add_argument("--freeswitch-users", type=int, default=10000)
    parser.add_argument("--freeswitch-domains", type=int, default=20)
    args = parser.parse_args()
    pbxs = args.pbx.split(",")
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-bench-") as tmp:
        work = Path(tmp)
        if "asterisk" in pbxs:
            realistic = {
                size: measure_office(
                    size,
                    args.options,
                    args.runs,
                    work,
                    floor=True,
                    daemon_runs=args.daemon_runs if size == args.daemon_size else 0,
                )
                for size in sizes(args.realistic)
            }
            for size, r in realistic.items():
                k = f"{size // 1000}k"
                summary[f"agent_over_floor_{k}"] = round(r["agent_over_floor"], 3)
                summary[f"seconds_{k}"] = round(r["seconds"], 3)
                summary[f"floor_seconds_{k}"] = round(r["floor_seconds"], 3)
                summary[f"peak_rss_mb_{k}"] = round(r["peak_rss_mb"], 1)
                summary[f"rss_kb_per_extension_{k}"] = round(r["rss_kb_per_extension"], 3)
                if "daemon_extra_seconds" in r:
                    summary[f"daemon_extra_seconds_{k}"] = round(r["daemon_extra_seconds"], 3)
            if 10000 in realistic:
                small = measure_office(10000, 10, args.runs, work, floor=False)
                base = small["rss_kb_per_extension"]
                summary["rss_per_extension_40_over_10_options"] = round(
                    realistic[10000]["rss_kb_per_extension"] / base, 3
                )
                if 50000 in realistic:
                    summary["rss_per_extension_50k_over_10k"] = round(
                        realistic[50000]["rss_kb_per_extension"]
                        / realistic[10000]["rss_kb_per_extension"],
                        3,
                    )
            classic = {size: measure_classic(size, args.runs, work) for size in sizes(args.sizes)}
            if 10000 in classic:
                summary["classic_seconds_10k"] = round(classic[10000]["seconds"], 3)
                summary["classic_peak_rss_mb_10k"] = round(classic[10000]["peak_rss_mb"], 1)
                if 1000 in classic:
                    summary["classic_growth_10k_over_1k"] = round(
                        classic[10000]["seconds"] / classic[1000]["seconds"], 2
                    )
        if "freeswitch" in pbxs:
            fs = measure_freeswitch(
                args.freeswitch_users, args.freeswitch_domains, args.runs, work
            )
            summary["freeswitch_seconds"] = round(fs["seconds"], 3)
            summary["freeswitch_peak_rss_mb"] = round(fs["peak_rss_mb"], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
