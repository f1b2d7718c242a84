"""The README's operator section, run as written against the installed unit under a real systemd
(issue 15): a Debian bookworm root booted with systemd-nspawn, `scripts/install` from a clone,
then every command of the section, as root or as a technician in group pbx-agent, against an
AMI simulator, a licence server and an sshd on host loopback. Between the commands the test
checks what an operator would see: READY, restores landing where asked or refused with the
place to use, licence switching in effect and undone byte for byte, journal priorities, the
watchdog, one clear failure for a config error or a missing credential, an upgrade keeping the
config, and an uninstall that leaves the system as it was.

Needs root, debootstrap and systemd-container (scripts/test installs them); skipped with the
reason when not root or when systemd-nspawn cannot boot a container here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest

from drivers.asterisk.ami import AmiClient
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.simulator import Simulator
from tests.conftest import AGENT_SECRET
from tests.integration.daemon_harness import ssh_table
from tests.licence_server import LicenceServer, now
from tests.sshd import SshServer
from tests.systemd.container import (
    REPO,
    Container,
    ContainerUnavailable,
    Done,
    clone,
    missing_tools,
    rootfs,
    wheelhouse,
)

SITE = "northwind-main"
CLONE, ETC, STATE = "/root/pbx-agent", "/etc/pbx-agent", "/var/lib/pbx-agent"
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/root/wheels"}
PLACEHOLDER = "ID"


def readme_commands() -> list[str]:
    """Every command line in the ```sh blocks of the README's operator section, comments cut."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Operating it on a site", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_the_operator_section_is_commands_the_stage_knows() -> None:
    """Cheap guard, run everywhere: the section parses into the commands the stage runs."""
    commands = readme_commands()
    assert commands[0] == "scripts/install" and commands[-1] == "scripts/uninstall --purge"
    assert "pbx-agent backup restore ID --to /var/lib/pbx-agent/restore/ID" in commands


class Site:
    """The booted container as the operator's root shell, and the README it follows."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.readme = readme_commands()
        self.followed: set[str] = set()

    async def sh(self, command: str, **kwargs: Any) -> Done:
        """A command that is not the README's: the test's own setup and checks."""
        return await asyncio.to_thread(self.container.run, command, **kwargs)

    async def ok(self, command: str, **kwargs: Any) -> str:
        done = await self.sh(command, **kwargs)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.output}"
        return done.stdout

    async def op(
        self, template: str, *, expect: int | None = 0, cwd: str = "/root", **kwargs: Any
    ) -> Done:
        """A README command (the template as written there, `ID` filled in from kwargs)."""
        assert template in self.readme, f"not in the README's operator section: {template}"
        self.followed.add(template)
        command = template.replace(PLACEHOLDER, kwargs.pop("id", PLACEHOLDER))
        done = await self.sh(command, cwd=cwd, **kwargs)
        if expect is not None:
            who = kwargs.get("user") or "root"
            assert done.returncode == expect, (
                f"{command} (as {who}): exit {done.returncode}, expected {expect}\n{done.output}"
            )
        return done

    async def unit(self, *properties: str) -> dict[str, str]:
        shown = await self.ok(f"systemctl show pbx-agent -p {','.join(properties)}")
        return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)

    async def write(self, path: str, text: str) -> None:
        """As an editor would: the file keeps its owner and mode when it exists."""
        await self.ok(f"cat > {path}", input=text)

    @staticmethod
    async def wait_for(probe: Callable[[], Any], seconds: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            value = await probe()
            if value:
                return value
            assert loop.time() < deadline, f"timed out after {seconds} s waiting for {what}"
            await asyncio.sleep(0.5)


def config(
    sim: Simulator,
    sshd: SshServer,
    archive: SshServer,
    licence: LicenceServer,
    identity: str,
    source: str,
) -> str:
    path = "/etc/asterisk" if source == "local" else str(sim.ctx.config.root)
    return f"""site_id = "{SITE}"

[pbx]
driver = "asterisk"

[pbx.ami]
host = "127.0.0.1"
port = {sim.port}
username = "agent"
secret_credential = "ami-secret"

[state]
dir = "{STATE}"

[control]
socket = "/run/pbx-agent/control.sock"

[backup]
enabled = true
schedule = "0 3 * * *"
source = "{source}"
path = "{path}"
recipients = ["{identity}"]
identity_file = "{ETC}/backup-identity.txt"

{ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, Path(ETC) / "backup_ed25519")}
{ssh_table("backup.offsite", "127.0.0.1", archive.port, archive.user, Path(ETC) / "backup_ed25519")}
remote_dir = "{archive.workdir / "archive"}"
{licence.config(lan_subnets='["127.0.0.0/24"]', integration_accounts='["crm"]')}"""


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# What an uninstall cannot be expected to restore: logs, systemd's own bookkeeping, caches,
# temporary files (the support bundle lives in /tmp), the user databases' backup copies.
VOLATILE = ("/var/log", "/var/lib/systemd", "/var/cache", "/var/tmp", "/tmp", "/root/.")
LISTING = (
    "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run \\) -prune "
    "-o -print | sort"
)
USER_DATABASES = "cat /etc/passwd /etc/group /etc/shadow /etc/gshadow"


def listing(text: str) -> set[str]:
    return {p for p in text.splitlines() if not p.startswith(VOLATILE) and not p.endswith("-")}


@pytest.fixture
def container(tmp_path: Path, ami_simulator: Simulator) -> Container:
    if os.geteuid() != 0:
        pytest.skip("needs root: systemd-nspawn boots the container (scripts/test runs as root)")
    if missing := missing_tools():
        pytest.skip(f"missing Debian packages {', '.join(missing)} (scripts/test installs them)")
    root = rootfs(tmp_path / "debootstrap.log")
    wheels = wheelhouse(tmp_path / "pip-wheel.log")
    source = clone(tmp_path / "clone")
    binds = {source: CLONE, wheels: "/root/wheels", ami_simulator.ctx.config.root: "/etc/asterisk"}
    return Container(root=root, workdir=tmp_path, binds=binds)


@pytest.mark.timeout(1800)
async def test_operator_section_under_systemd(
    container: Container, ami_simulator: Simulator, sshd: SshServer, archive_sshd: SshServer
) -> None:
    # The archive host takes the same key as the PBX (the README installs one key file).
    (archive_sshd.workdir / "archive").mkdir()
    with (archive_sshd.workdir / "authorized_keys").open("a") as keys:
        keys.write(sshd.client_key.with_suffix(".pub").read_text())
    licence = LicenceServer(site_id=SITE).start()
    licence.issue(expires_at=now() + timedelta(days=200))
    try:
        try:
            await asyncio.to_thread(container.boot)
        except ContainerUnavailable as exc:
            pytest.skip(f"systemd-nspawn cannot boot a container here: {exc}")
        try:
            await walk_through_the_readme(
                Site(container), ami_simulator, sshd, archive_sshd, licence
            )
        finally:
            await asyncio.to_thread(container.stop)
    finally:
        licence.stop()


async def walk_through_the_readme(
    site: Site, sim: Simulator, sshd: SshServer, archive: SshServer, licence: LicenceServer
) -> None:
    pbx = sim.ctx.config.root
    identity = pyrage.x25519.Identity.generate()
    sftp_config = config(sim, sshd, archive, licence, str(identity.to_public()), "sftp")
    local_config = config(sim, sshd, archive, licence, str(identity.to_public()), "local")

    # The site before the agent: an Asterisk host (its group owns /etc/asterisk), a
    # technician's account, and what the operator brought (the backup key and identity).
    await site.ok(
        "groupadd --system asterisk && chgrp -R asterisk /etc/asterisk && "
        "find /etc/asterisk -type d -exec chmod 0750 {} + && "
        "find /etc/asterisk -type f -exec chmod 0640 {} + && "
        "useradd --create-home --shell /bin/bash alice"
    )
    await site.write("/root/backup_ed25519", sshd.client_key.read_text())
    await site.write("/root/backup-identity.txt", f"{identity}\n")
    before = listing(await site.ok(LISTING))
    users_before = await site.ok(USER_DATABASES)

    # -- install and configure ------------------------------------------------------------
    installed = await site.op("scripts/install", cwd=CLONE, env=OFFLINE, timeout=600)
    assert f"wrote {ETC}/agent.toml" in installed.stdout
    await site.write(f"{ETC}/agent.toml", sftp_config)
    await site.write(f"{ETC}/ami-secret", AGENT_SECRET + "\n")
    assert await site.ok(f"stat -c '%U:%G %a' {ETC}/agent.toml {ETC}/ami-secret") == (
        "root:pbx-agent 640\nroot:root 600\n"
    )
    await site.op(
        "install -o pbx-agent -g pbx-agent -m 0600 backup_ed25519 backup-identity.txt "
        "/etc/pbx-agent/"
    )
    await site.op("usermod -aG asterisk pbx-agent")
    await site.op("chmod g+ws /etc/asterisk")
    await site.op("usermod -aG pbx-agent alice")
    # Failure 4: config check on the installed config, without $CREDENTIALS_DIRECTORY.
    checked = await site.op("pbx-agent config check /etc/pbx-agent/agent.toml")
    assert f"OK (site {SITE})" in checked.stdout
    # Failure 3: pinned as root, readable by the service.
    pinned = await site.op("pbx-agent backup pin-host-key", input="y\n")
    assert "SHA256:" in pinned.stdout and f"{STATE}/known_hosts" in pinned.stdout
    assert await site.ok(f"stat -c '%U:%G' {STATE}/known_hosts") == "pbx-agent:pbx-agent\n"
    await site.op("pbx-agent backup pin-host-key --offsite", input="y\n")
    assert await site.ok(f"stat -c '%U:%G' {STATE}/known_hosts") == "pbx-agent:pbx-agent\n"

    # -- start: READY, then the day-to-day commands as root and as alice ----------------------
    await site.op("systemctl start pbx-agent")
    state = await site.unit("ActiveState", "SubState")  # Type=notify: READY=1 was sent
    assert state == {"ActiveState": "active", "SubState": "running"}, state
    for user in (None, "alice"):
        shown = await site.op("pbx-agent status", user=user)
        assert SITE in shown.stdout
        counted = await site.op("pbx-agent count", user=user)
        assert "11 billable users" in counted.stdout, counted.stdout
    diag = await site.op("pbx-agent diag")
    assert "FAIL" not in diag.stdout and diag.stdout.count("PASS") >= 8, diag.stdout
    # Failure 7: a group member cannot read the secrets: WARN with a true hint, no FAIL.
    member = await site.op("pbx-agent diag", user="alice")
    assert "FAIL" not in member.stdout, member.stdout
    assert re.search(r"WARN\s+pbx-ami\s+not checked: user alice may not read", member.stdout)
    assert "run pbx-agent diag as root" in member.stdout
    assert re.search(r"PASS\s+daemon\s+running", member.stdout), member.stdout
    await site.op("pbx-agent diag --bundle /tmp/support.tar.gz")
    await site.ok("test -s /tmp/support.tar.gz")

    # -- backups over SFTP, restore where asked (failure 1) -----------------------------------
    backup_id = await backup_now(site, expected_files=len(digests(pbx)))
    listed = await site.op("pbx-agent backup list")
    assert backup_id in listed.stdout
    target = f"{STATE}/restore/{backup_id}"
    restore = "pbx-agent backup restore ID --to /var/lib/pbx-agent/restore/ID"
    restored = await site.op(restore, id=backup_id)
    assert f"restored into {target}" in restored.stdout
    sums = await site.ok(f"cd {target} && find . -type f -exec sha256sum {{}} +")
    landed = {name.removeprefix("./"): digest for digest, name in map(str.split, sums.splitlines())}
    assert landed == digests(pbx), "the backup's files, where the operator asked"
    helped = await site.ok("pbx-agent backup restore --help")
    example = next(line.split() for line in helped.splitlines() if " --to /" in line)
    assert example[:3] == ["pbx-agent", "backup", "restore"], example
    example[3] = backup_id  # the --help example, as installed
    assert "files restored" in await site.ok(" ".join(example))
    for refused, why in (
        ("/tmp/restore-check", "the service does not see that folder"),
        ("/srv/restore-check", "read-only file system for the service (user pbx-agent)"),
    ):
        done = await site.sh(f"pbx-agent backup restore {backup_id} --to {refused}")
        assert done.returncode == 1, done.output
        assert f"the service cannot reach {refused} ({why}" in done.stderr, done.stderr
        assert f"restore under {STATE}/restore/ instead" in done.stderr
        assert (await site.sh(f"test -e {refused}")).returncode == 1, "nothing left behind"

    # -- the PBX host itself: local backup, a lapse and a renewal (failure 2) -----------------
    await site.write(f"{ETC}/agent.toml", local_config)
    await site.op("pbx-agent config check /etc/pbx-agent/agent.toml")
    await site.op("systemctl restart pbx-agent")
    await backup_now(site, expected_files=len(digests(pbx)))
    pristine, acls = tree(pbx), await endpoint_acls(sim)
    licence.issue(expires_at=now() + timedelta(days=200), status="lapsed")
    lapsed = await site.op("pbx-agent licence refresh")
    assert "lapsed" in lapsed.stdout, lapsed.stdout
    features = json.loads(await site.ok("pbx-agent features --json"))
    enforced = {f["feature"] for f in features if f["wanted"] == "off" and f["enforced"]}
    assert {"offsite_devices", "integrations"} <= enforced, features
    # Alice's app shares her desk phone's AOR: the PBX cannot tell them apart, and the agent
    # says so by name rather than claim the feature off (102-app itself is switched).
    app = next(f for f in features if f["feature"] == "softphone_app")
    assert not app["enforced"] and "seat 101 (Alice Nguyen)" in app["actual"], app
    shown = await site.op("pbx-agent features")
    assert "softphone_app" in shown.stdout and "NOT SWITCHED" in shown.stdout, shown.output
    changed = [name for name, data in tree(pbx).items() if pristine.get(name) != data]
    assert "pjsip.conf" in changed, changed
    assert "; pbx-agent:softphone_app 102-app:" in (pbx / "pjsip.conf").read_text()
    assert await site.ok("stat -c %G /etc/asterisk/pjsip.conf") == "asterisk\n"
    switched = await endpoint_acls(sim)  # in effect: what the PBX now answers for them
    assert all(switched[e] != acls[e] for e in ("102-app", "100")), (acls, switched)
    licence.issue(expires_at=now() + timedelta(days=400), issued_at=now())
    renewed = await site.op("pbx-agent licence refresh")
    assert "active" in renewed.stdout, renewed.stdout
    assert tree(pbx) == pristine, "renewal puts every file back byte for byte"
    assert await endpoint_acls(sim) == acls

    # -- the watchdog restarts a stopped process -------------------------------------------
    await watchdog_restarts_a_stopped_agent(site)

    # -- stop, a config error, a missing credential (failure 5) ---------------------------
    await site.op("systemctl stop pbx-agent")
    stopped = await site.unit("ActiveState", "Result")
    assert (stopped["ActiveState"], stopped["Result"]) == ("inactive", "success"), stopped
    gone = await site.sh("pbx-agent status")
    assert gone.returncode == 1 and "not running" in gone.stderr
    whole = await site.op("pbx-agent state recover")
    assert "nothing to recover" in whole.stdout, whole.output
    await site.ok(f"truncate -s 0 {STATE}/state.db")
    refused = await site.sh("systemctl start pbx-agent")
    assert refused.returncode != 0
    await site.ok("systemctl reset-failed pbx-agent")
    recovered = await site.op("pbx-agent state recover", input="y\n")
    assert "new state store" in recovered.stdout, recovered.output
    await site.op("systemctl start pbx-agent")
    await site.op("systemctl stop pbx-agent")
    await site.write(f"{ETC}/agent.toml", local_config.replace('driver = "asterisk"',
                                                              'driver = "asterix"'))
    await fails_once(site, exit_status="2")
    errors = await site.op("journalctl -u pbx-agent -p warning")
    assert "config error" in errors.stdout and "pbx.driver" in errors.stdout, errors.stdout
    assert "licence token accepted" not in errors.stdout, "info lines are not warnings"
    await site.write(f"{ETC}/agent.toml", local_config)
    await site.ok(f"mv {ETC}/ami-secret /root/ami-secret.kept")
    await fails_once(site, exit_status="243")
    await site.ok(f"mv /root/ami-secret.kept {ETC}/ami-secret")
    await journal_priorities_follow_log_levels(site)

    # -- upgrade keeps the config and the state, restarting the agent ---------------------
    await site.op("systemctl start pbx-agent")
    pid = (await site.unit("MainPID"))["MainPID"]
    settings = await site.ok(f"sha256sum {ETC}/agent.toml")
    upgraded = await site.op("scripts/install", cwd=CLONE, env=OFFLINE, timeout=600)
    assert f"kept the existing {ETC}/agent.toml" in upgraded.stdout
    after = await site.unit("MainPID", "ActiveState", "SubState")
    assert after["MainPID"] != pid and after["SubState"] == "running", after
    assert await site.ok(f"sha256sum {ETC}/agent.toml") == settings
    assert backup_id in (await site.op("pbx-agent backup list")).stdout

    # -- uninstall keeps config and state; --purge leaves the system as it was --------------
    await site.op("scripts/uninstall", cwd=CLONE)
    assert (await site.sh("systemctl cat pbx-agent")).returncode != 0
    await site.ok(f"test ! -e /opt/pbx-agent && test ! -e /usr/local/bin/pbx-agent && "
                  f"test -s {ETC}/agent.toml && test -s {STATE}/state.db")
    await site.op("scripts/uninstall --purge", cwd=CLONE)
    assert await site.ok(USER_DATABASES) == users_before, "user and group gone"
    leftovers = await site.ok(
        f"find / -xdev -path {CLONE} -prune -o \\( -name '*pbx-agent*' -o -name '*pbx_agent*' \\) "
        "-print"
    )
    assert leftovers == "", leftovers
    assert listing(await site.ok(LISTING)) ^ before == set()

    assert site.followed == set(site.readme), set(site.readme) - site.followed


async def endpoint_acls(sim: Simulator) -> dict[str, list[str]]:
    """The ACLs the PBX reports for an app endpoint and a desk phone (PJSIPShowEndpoint)."""
    client = AmiClient(AmiSettings("127.0.0.1", sim.port, "agent", AGENT_SECRET))
    await client.connect()
    try:
        acls = {}
        for endpoint in ("102-app", "100"):
            answer = await client.list_action("PJSIPShowEndpoint", Endpoint=endpoint)
            acls[endpoint] = [value for message in answer for key, value in message if key == "Acl"]
        return acls
    finally:
        await client.close()


async def backup_now(site: Site, expected_files: int) -> str:
    made = await site.op("pbx-agent backup now")
    found = re.search(r"backup (\S+): (\d+) files", made.stdout)
    assert found and int(found[2]) == expected_files, made.stdout
    return found[1]


async def watchdog_restarts_a_stopped_agent(site: Site) -> None:
    """SIGSTOP the agent; systemd's watchdog kills and restarts it. A runtime drop-in shortens
    the unit's 60 s WatchdogSec to 10 s for this step only."""
    dropin = "/run/systemd/system/pbx-agent.service.d"
    await site.ok(f"mkdir -p {dropin}")
    await site.write(f"{dropin}/watchdog.conf", "[Service]\nWatchdogSec=10s\n")
    await site.ok("systemctl daemon-reload && systemctl restart pbx-agent")
    before = await site.unit("MainPID", "NRestarts")
    await site.ok(f"kill -STOP {before['MainPID']}")

    async def restarted() -> bool:
        now_ = await site.unit("MainPID", "NRestarts", "SubState")
        return now_["MainPID"] not in ("0", before["MainPID"]) and now_["SubState"] == "running"

    await site.wait_for(restarted, 60, "the watchdog's restart")
    after = await site.unit("NRestarts")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    journal = await site.ok("journalctl -u pbx-agent --no-pager -o cat")
    assert "Watchdog timeout" in journal
    await site.ok(f"rm -r {dropin} && systemctl daemon-reload && systemctl restart pbx-agent")
    assert (await site.unit("WatchdogUSec"))["WatchdogUSec"] == "1min"


async def fails_once(site: Site, exit_status: str) -> None:
    """`systemctl start` fails, and the unit is failed for good: no restart is scheduled."""
    await site.op("systemctl start pbx-agent", expect=None)
    shown = await site.unit("ActiveState", "SubState", "ExecMainStatus", "NRestarts")
    assert shown == {
        "ActiveState": "failed",
        "SubState": "failed",
        "ExecMainStatus": exit_status,
        "NRestarts": "0",
    }, shown
    await site.ok("systemctl reset-failed pbx-agent")


async def journal_priorities_follow_log_levels(site: Site) -> None:
    """Failure 6: every JSON line the agent wrote has the journal priority of its level."""
    priority = {"debug": "7", "info": "6", "warning": "4", "error": "3", "critical": "2"}
    entries = await site.ok("journalctl -u pbx-agent -o json --no-pager")
    seen = set()
    for entry in map(json.loads, entries.splitlines()):
        message = entry.get("MESSAGE")
        if not (isinstance(message, str) and message.startswith("{")):
            continue  # systemd's own lines about the unit
        level = json.loads(message)["level"]
        assert entry["PRIORITY"] == priority[level], (level, entry["PRIORITY"], message)
        seen.add(level)
    assert {"info", "error"} <= seen, seen
