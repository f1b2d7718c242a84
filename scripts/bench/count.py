#!/usr/bin/env python3
"""Benchmark: count the billable users of generated offices of 100, 1,000 and 10,000
extensions (plus apps, mailboxes, queues, hints) served by the AMI simulator over TCP.

The simulator runs in its own process; each count runs in a fresh agent process (the AMI
client, the parsers and the seat rules, as the daemon runs them), which reports its own wall
time and peak RSS. Targets on a 2-core machine: 10k extensions in < 3 s and < 150 MB peak
RSS, and t(10k)/t(1k) <= 12. The last line printed is one JSON object.

Usage: .venv/bin/python scripts/bench/count.py [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CONFIG = ROOT / "tests/fixtures/asterisk-ami/pbx-config"
SECRET = "bench-secret-0000"
APP_EVERY, QUEUE_EVERY, UNREGISTERED_EVERY = 5, 50, 4

PJSIP_HEAD = """[global]
type = global
[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:5060
[tpl-endpoint-phone](!)
type = endpoint
transport = transport-udp
context = from-internal
disallow = all
allow = g722,ulaw,alaw
[tpl-auth](!)
type = auth
auth_type = userpass
[tpl-aor-phone](!)
type = aor
max_contacts = 1
qualify_frequency = 60
"""


def _extension(ext: str, name: str, number: str) -> str:
    return (
        f'[{ext}](tpl-endpoint-phone)\ncallerid = "{name}" <{number}>\nauth = {ext}\n'
        f"aors = {ext}\nmailboxes = {number}@default\n"
        f"[{ext}](tpl-auth)\nusername = {ext}\npassword = pw-{ext}\n[{ext}](tpl-aor-phone)\n"
    )


def write_office(directory: Path, size: int) -> Path:
    """An office of `size` extensions: every APP_EVERY-th has a `{ext}-app` endpoint, most
    phones are registered, one voicemail box per extension, a queue per QUEUE_EVERY."""
    etc = directory / "pbx-config"
    etc.mkdir(parents=True)
    for name in ("asterisk.conf", "res_parking.conf"):
        (etc / name).write_text((FIXTURE_CONFIG / name).read_text())
    (etc / "manager.conf").write_text(
        "[general]\nenabled = yes\n[agent]\n"
        f"secret = {SECRET}\nread = system,config,reporting,command\n"
        "write = system,config,reporting,command\n"
    )
    (etc / "iax.conf").write_text("[general]\nbindport = 4569\n")
    exts = [str(10000 + i) for i in range(size)]
    pjsip, voicemail, hints, contacts = [PJSIP_HEAD], ["[general]\n[default]\n"], [], []
    for i, ext in enumerate(exts):
        pjsip.append(_extension(ext, f"User {ext}", ext))
        voicemail.append(f"{ext} => 1234,User {ext},,,tz=eastern\n")
        hints.append(f"exten => {ext},hint,PJSIP/{ext}\nexten => {ext},1,Dial(PJSIP/{ext})\n")
        if i % UNREGISTERED_EVERY:
            contacts.append(
                (
                    ext,
                    f"sip:{ext}@10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:5060",
                    "Yealink SIP-T46S 66.86.0.15",
                )
            )
        if i % APP_EVERY == 0:
            app = f"{ext}-app"
            pjsip.append(_extension(app, f"User {ext}", ext))
            contacts.append(
                (app, f"sip:{app}@10.200.{i // 256 % 256}.{i % 256}:49000", "Zoiper rv2.10.20.2")
            )
    queues = [
        f"[q{n}]\nstrategy = ringall\nmember => PJSIP/{exts[n * QUEUE_EVERY]}\n"
        for n in range(max(1, size // QUEUE_EVERY))
    ]
    (etc / "pjsip.conf").write_text("".join(pjsip))
    (etc / "voicemail.conf").write_text("".join(voicemail))
    (etc / "queues.conf").write_text("[general]\n" + "".join(queues))
    (etc / "extensions.conf").write_text("[internal-extensions]\n" + "".join(hints))
    office = directory / "office.toml"
    lines = [
        f'name = "bench {size}"',
        'config_dir = "pbx-config"',
        "[pbx]",
        'version = "22.10.1"',
        'system_name = "bench"',
    ]
    for aor, uri, ua in contacts:
        lines += [
            "[[contacts]]",
            f'aor = "{aor}"',
            f'uri = "{uri}"',
            f'user_agent = "{ua}"',
            'status = "Reachable"',
            "rtt_usec = 500",
        ]
    office.write_text("\n".join(lines) + "\n")
    return office


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"simulator exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("simulator did not start")


AGENT = r"""
import asyncio, json, resource, sys, time
from datetime import UTC, datetime
from agent.config.schema import CountingConfig
from agent.counting.rules import History, count
from drivers.gc_pause import paused_gc
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.settings import AmiSettings

async def main(port):
    started = time.perf_counter()
    driver = AsteriskDriver(AmiSettings("127.0.0.1", port, "agent", sys.argv[2],
                            connect_timeout=10, action_timeout=60))
    await driver.connect()
    with paused_gc():  # as CountingService.count_now does
        inventory = await driver.inventory()
        now = datetime.now(UTC)
        report = count(inventory, CountingConfig(), History(now, {}), site_id="bench", now=now)
    elapsed = time.perf_counter() - started
    await driver.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": rss_mb, "billable": report.billable,
                      "warnings": len(report.warnings)}))

asyncio.run(main(int(sys.argv[1])))
"""


def measure(size: int, workdir: Path) -> dict[str, float]:
    office = write_office(workdir / str(size), size)
    port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "simulate",
            "asterisk",
            "--office",
            str(office),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        wait_port(port, sim)
        runs = []
        for _ in range(5 if size <= 1000 else 3):  # best of several: the small sizes are noisy
            out = subprocess.run(
                [sys.executable, "-c", AGENT, str(port), SECRET],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        sim.terminate()
        sim.wait(10)
    best = min(runs, key=lambda r: r["seconds"])
    expected = size  # one seat per extension; apps merge into theirs
    if best["billable"] != expected:
        raise SystemExit(f"{size}: counted {best['billable']}, expected {expected}")
    print(
        f"{size:>6} extensions: {best['seconds']:.3f} s, peak RSS {best['peak_rss_mb']:.1f} MB, "
        f"{best['billable']} seats, {best['warnings']} warnings (best of {len(runs)})"
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pbx-bench-") as tmp:
        results = {size: measure(size, Path(tmp)) for size in sizes}
    summary = {}
    if 10000 in results:
        summary["seconds_10k"] = round(results[10000]["seconds"], 3)
        summary["peak_rss_mb_10k"] = round(results[10000]["peak_rss_mb"], 1)
        if 1000 in results:
            summary["growth_10k_over_1k"] = round(
                results[10000]["seconds"] / results[1000]["seconds"], 2
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
