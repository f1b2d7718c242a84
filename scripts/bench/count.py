#!/usr/bin/env python3
"""Benchmark: count the billable users of generated offices of 100, 1,000 and 10,000
extensions (plus apps, mailboxes, queues, hints) served by the AMI simulator over TCP, and of
a FreeSWITCH office of 10,000 users over 20 domains (tenants) served by the ESL simulator.

The simulator runs in its own process; each count runs in a fresh agent process (the driver's
client, the parsers and the seat rules, per tenant for FreeSWITCH, as the daemon runs them),
which reports its own wall time and peak RSS. Targets on a 2-core machine: 10k extensions in
< 3 s and < 150 MB peak RSS, and t(10k)/t(1k) <= 12; 10k FreeSWITCH users over 20 domains in
< 3 s and < 150 MB. The last line printed is one JSON object.

Usage: .venv/bin/python scripts/bench/count.py [--sizes 100,1000,10000] [--pbx asterisk,freeswitch]
       [--freeswitch-users 10000] [--freeswitch-domains 20]
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
from typing import Any

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


def best_of(
    pbx: str, office: Path, agent: str, secret: str, runs: int, start_timeout: float = 60
) -> tuple[dict[str, Any], int]:
    """Serve `office` with `pbx-agent simulate PBX` and count it `runs` times, each in a fresh
    agent process running `agent`; the fastest run, and how many ran."""
    port = free_port()
    simulate = [sys.executable, "-m", "agent", "simulate", pbx, "--office", str(office)]
    sim = subprocess.Popen(
        [*simulate, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        wait_port(port, sim, start_timeout)
        results = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", agent, str(port), secret],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        sim.terminate()
        sim.wait(10)
    return min(results, key=lambda r: r["seconds"]), len(results)


def measure(size: int, workdir: Path) -> dict[str, float]:
    office = write_office(workdir / str(size), size)
    # best of several: the small sizes are noisy
    best, runs = best_of("asterisk", office, AGENT, SECRET, 5 if size <= 1000 else 3)
    expected = size  # one seat per extension; apps merge into theirs
    if best["billable"] != expected:
        raise SystemExit(f"{size}: counted {best['billable']}, expected {expected}")
    print(
        f"{size:>6} extensions: {best['seconds']:.3f} s, peak RSS {best['peak_rss_mb']:.1f} MB, "
        f"{best['billable']} seats, {best['warnings']} warnings (best of {runs})"
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--pbx", default="asterisk,freeswitch")
    parser.add_argument("--freeswitch-users", type=int, default=10000)
    parser.add_argument("--freeswitch-domains", type=int, default=20)
    args = parser.parse_args()
    pbxs = args.pbx.split(",")
    sizes = [int(s) for s in args.sizes.split(",")] if "asterisk" in pbxs else []
    with tempfile.TemporaryDirectory(prefix="pbx-bench-") as tmp:
        results = {size: measure(size, Path(tmp)) for size in sizes}
        fs = None
        if "freeswitch" in pbxs:
            fs = measure_freeswitch(args.freeswitch_users, args.freeswitch_domains, Path(tmp))
    summary = {}
    if fs is not None:
        summary["freeswitch_seconds"] = round(fs["seconds"], 3)
        summary["freeswitch_peak_rss_mb"] = round(fs["peak_rss_mb"], 1)
    if 10000 in results:
        summary["seconds_10k"] = round(results[10000]["seconds"], 3)
        summary["peak_rss_mb_10k"] = round(results[10000]["peak_rss_mb"], 1)
        if 1000 in results:
            summary["growth_10k_over_1k"] = round(
                results[10000]["seconds"] / results[1000]["seconds"], 2
            )
    print(json.dumps(summary))


# -- FreeSWITCH: one domain per tenant ------------------------------------------------------

FS_PASSWORD = "bench-esl-0000"
FS_ROOT = """<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="esl_password={password}"/>
  <section name="configuration" description="bench">
    <configuration name="event_socket.conf" description="ESL">
      <settings>
        <param name="listen-ip" value="127.0.0.1"/>
        <param name="password" value="$${{esl_password}}"/>
      </settings>
    </configuration>
    <configuration name="sofia.conf" description="SIP">
      <profiles>
        <profile name="internal">
          <domains><domain name="all" alias="true" parse="false"/></domains>
          <settings>
            <param name="sip-ip" value="127.0.0.1"/>
            <param name="sip-port" value="5060"/>
          </settings>
        </profile>
      </profiles>
    </configuration>
  </section>
  <section name="dialplan" description="bench">
    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>
  </section>
  <section name="directory" description="bench">
    <X-PRE-PROCESS cmd="include" data="directory/*.xml"/>
  </section>
</document>
"""


def _fs_user(uid: str, number: str, name: str) -> str:
    return (
        f'<user id="{uid}"><params><param name="password" value="pw-{uid}"/></params>'
        f'<variables><variable name="effective_caller_id_name" value="{name}"/>'
        f'<variable name="effective_caller_id_number" value="{number}"/></variables></user>\n'
    )


def write_freeswitch_office(directory: Path, users: int, domains: int) -> tuple[Path, int]:
    """`users` phone users spread over `domains` tenants; every APP_EVERY-th has an app user
    presenting its number, most phones are registered, an IVR and a queue per tenant."""
    etc = directory / "freeswitch"
    (etc / "directory").mkdir(parents=True)
    (etc / "dialplan").mkdir()
    (etc / "freeswitch.xml").write_text(FS_ROOT.format(password=FS_PASSWORD))
    per = users // domains
    regs, n = [], 0
    for d in range(domains):
        domain = f"tenant{d:02d}.example"
        # <include> and </include> lines are dropped whole by FreeSWITCH's pre-processor
        body = [f'<include>\n<domain name="{domain}"><params>'
                '<param name="allow-empty-password" value="false"/></params><variables>'
                f'<variable name="user_context" value="{domain}"/></variables><groups>'
                '<group name="default"><users>\n']
        for i in range(per):
            ext = str(1000 + i)
            body.append(_fs_user(ext, ext, f"User {ext}"))
            if n % UNREGISTERED_EVERY:
                ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
                phone = "Yealink SIP-T46S 66.86.0.15"
                regs.append((f"{ext}@{domain}", f"sip:{ext}@{ip}:5060", phone, ip))
            if n % APP_EVERY == 0:
                app = f"{ext}-app"
                body.append(_fs_user(app, ext, f"User {ext} (app)"))
                ip = f"10.200.{n // 256 % 256}.{n % 256}"
                regs.append((f"{app}@{domain}", f"sip:{app}@{ip}:49000", "Zoiper rv2.10.20.2", ip))
            n += 1
        body.append("</users></group></groups></domain>\n</include>\n")
        (etc / "directory" / f"{domain}.xml").write_text("".join(body))
        (etc / "dialplan" / f"{domain}.xml").write_text(
            f'<include>\n<context name="{domain}">'
            '<extension name="ivr"><condition field="destination_number" expression="^5000$">'
            '<action application="ivr" data="main"/></condition></extension>'
            '<extension name="queue"><condition field="destination_number" expression="^7000$">'
            f'<action application="callcenter" data="sales@{domain}"/></condition></extension>'
            "</context>\n</include>\n"
        )
    lines = [f'name = "bench freeswitch {users}"', 'config_dir = "freeswitch"', "[pbx]",
             'version = "1.10.12-release"', "[globals]", 'hostname = "bench"']
    for user, uri, agent, _ in regs:
        lines += ["[[registrations]]", f'user = "{user}"', f'contact = "{uri}"',
                  f'agent = "{agent}"', f'call_id = "c-{user}"', "expires = 120"]
    office = directory / "office.toml"
    office.write_text("\n".join(lines) + "\n")
    return office, per * domains


FS_AGENT = r"""
import asyncio, json, resource, sys, time
from datetime import UTC, datetime
from agent.config.schema import CountingConfig
from agent.counting.rules import History
from agent.counting.tenants import count_inventory
from drivers.gc_pause import paused_gc
from drivers.freeswitch.driver import FreeswitchDriver
from drivers.freeswitch.settings import EslSettings

async def main(port):
    started = time.perf_counter()
    driver = FreeswitchDriver(EslSettings("127.0.0.1", port, sys.argv[2],
                              connect_timeout=10, action_timeout=60))
    await driver.connect()
    with paused_gc():  # as CountingService.count_now does
        inventory = await driver.inventory()
        now = datetime.now(UTC)
        report = count_inventory(inventory, CountingConfig(), History(now, {}),
                                 site_id="bench", now=now)
    elapsed = time.perf_counter() - started
    await driver.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": rss_mb, "billable": report.billable,
                      "tenants": len(report.tenants), "warnings": len(report.warnings)}))

asyncio.run(main(int(sys.argv[1])))
"""


def measure_freeswitch(users: int, domains: int, workdir: Path) -> dict[str, float]:
    office, expected = write_freeswitch_office(workdir / f"fs-{users}", users, domains)
    best, runs = best_of("freeswitch", office, FS_AGENT, FS_PASSWORD, 3, start_timeout=180)
    if best["billable"] != expected or best["tenants"] != domains:
        raise SystemExit(
            f"freeswitch: counted {best['billable']} in {best['tenants']} tenants, "
            f"expected {expected} in {domains}"
        )
    print(
        f"{users:>6} FreeSWITCH users over {domains} domains: {best['seconds']:.3f} s, "
        f"peak RSS {best['peak_rss_mb']:.1f} MB, {best['billable']} seats, "
        f"{best['warnings']} warnings (best of {runs})"
    )
    return best


if __name__ == "__main__":
    main()
