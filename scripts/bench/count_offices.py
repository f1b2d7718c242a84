"""Generated offices for the counting benchmark (scripts/bench/count.py).

- `write_classic_office`: the original bench office (every fifth extension has a `{ext}-app`
  endpoint, three quarters registered, a voicemail box each, a queue per 50), small endpoints.
- `write_office`: the office issue 19 was measured on, with realistic endpoint sizes: N
  extensions, each endpoint + auth + AOR from templates, `options` effective options per
  endpoint (a FreePBX endpoint has about 40), mailboxes for 90 %, a hint and a dial line each,
  N/100 queues, 10 % registered. With `cost`, the simulator charges GetConfig as Asterisk does
  (`drivers/asterisk/sim/cost.py`).
- `write_freeswitch_office`: FreeSWITCH users spread over tenants (domains).
"""

from __future__ import annotations

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


def _common_files(etc: Path) -> None:
    etc.mkdir(parents=True)
    for name in ("asterisk.conf", "res_parking.conf"):
        (etc / name).write_text((FIXTURE_CONFIG / name).read_text())
    (etc / "manager.conf").write_text(
        "[general]\nenabled = yes\n[agent]\n"
        f"secret = {SECRET}\nread = system,config,reporting,command\n"
        "write = system,config,reporting,command\n"
    )
    (etc / "iax.conf").write_text("[general]\nbindport = 4569\n")


def _write_files(
    etc: Path, pjsip: list[str], voicemail: list[str], members: list[str], plan: list[str]
) -> None:
    """pjsip.conf, voicemail.conf, extensions.conf and queues.conf (a queue per member)."""
    queues = [
        f"[q{n}]\nstrategy = ringall\nmember => PJSIP/{member}\n"
        for n, member in enumerate(members)
    ]
    (etc / "pjsip.conf").write_text("".join(pjsip))
    (etc / "voicemail.conf").write_text("".join(voicemail))
    (etc / "queues.conf").write_text("[general]\n" + "".join(queues))
    (etc / "extensions.conf").write_text("[internal-extensions]\n" + "".join(plan))


def _office_toml(
    directory: Path, name: str, contacts: list[tuple[str, str, str]], pbx: list[str]
) -> Path:
    lines = [f'name = "{name}"', 'config_dir = "pbx-config"', "[pbx]", *pbx]
    for aor, uri, ua in contacts:
        lines += [
            "[[contacts]]",
            f'aor = "{aor}"',
            f'uri = "{uri}"',
            f'user_agent = "{ua}"',
            'status = "Reachable"',
            "rtt_usec = 500",
        ]
    office = directory / "office.toml"
    office.write_text("\n".join(lines) + "\n")
    return office


def _classic_extension(ext: str, name: str, number: str) -> str:
    return (
        f'[{ext}](tpl-endpoint-phone)\ncallerid = "{name}" <{number}>\nauth = {ext}\n'
        f"aors = {ext}\nmailboxes = {number}@default\n"
        f"[{ext}](tpl-auth)\nusername = {ext}\npassword = pw-{ext}\n[{ext}](tpl-aor-phone)\n"
    )


def write_classic_office(directory: Path, size: int) -> Path:
    """An office of `size` extensions: every APP_EVERY-th has a `{ext}-app` endpoint, most
    phones are registered, one voicemail box per extension, a queue per QUEUE_EVERY."""
    etc = directory / "pbx-config"
    _common_files(etc)
    exts = [str(10000 + i) for i in range(size)]
    pjsip, voicemail, hints, contacts = [PJSIP_HEAD], ["[general]\n[default]\n"], [], []
    for i, ext in enumerate(exts):
        pjsip.append(_classic_extension(ext, f"User {ext}", ext))
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
            pjsip.append(_classic_extension(app, f"User {ext}", ext))
            contacts.append(
                (app, f"sip:{app}@10.200.{i // 256 % 256}.{i % 256}:49000", "Zoiper rv2.10.20.2")
            )
    members = [exts[n * QUEUE_EVERY] for n in range(max(1, size // QUEUE_EVERY))]
    _write_files(etc, pjsip, voicemail, members, hints)
    pbx = ['version = "22.10.1"', 'system_name = "bench"']
    return _office_toml(directory, f"bench {size}", contacts, pbx)


# A FreePBX 17 endpoint's options (pjsip.endpoint.conf as FreePBX writes it), in its order;
# the template carries all but the per-extension ones below.
ENDPOINT_OPTIONS = (
    ("type", "endpoint"),
    ("transport", "transport-udp"),
    ("context", "from-internal"),
    ("disallow", "all"),
    ("allow", "g722,ulaw,alaw"),
    ("direct_media", "no"),
    ("rtp_symmetric", "yes"),
    ("force_rport", "yes"),
    ("rewrite_contact", "yes"),
    ("send_pai", "yes"),
    ("trust_id_inbound", "yes"),
    ("language", "en"),
    ("device_state_busy_at", "2"),
    ("allow_subscribe", "yes"),
    ("dtmf_mode", "rfc4733"),
    ("aggregate_mwi", "yes"),
    ("use_avpf", "no"),
    ("rtcp_mux", "no"),
    ("max_audio_streams", "1"),
    ("max_video_streams", "1"),
    ("bundle", "no"),
    ("ice_support", "no"),
    ("media_use_received_transport", "no"),
    ("user_eq_phone", "no"),
    ("send_connected_line", "yes"),
    ("media_encryption", "no"),
    ("timers", "yes"),
    ("timers_min_se", "90"),
    ("media_encryption_optimistic", "no"),
    ("refer_blind_progress", "yes"),
    ("mwi_subscribe_replaces_unsolicited", "yes"),
    ("tos_audio", "ef"),
    ("tos_video", "af41"),
    ("cos_audio", "5"),
    ("cos_video", "4"),
    ("sdp_session", "Asterisk"),
    ("rtp_timeout", "120"),
    ("inband_progress", "no"),
    ("one_touch_recording", "yes"),
    ("record_on_feature", "automixmon"),
    ("record_off_feature", "automixmon"),
    ("moh_suggest", "default"),
)
OWN_OPTIONS = 6  # callerid, auth, aors, mailboxes (or accountcode), call and pickup groups
MAILBOX_EVERY = 10  # every tenth extension has no mailbox (90 % have one)
REGISTERED_EVERY = 10  # 10 % registered
EXTENSIONS_PER_QUEUE = 100


def write_office(directory: Path, size: int, *, options: int = 40, cost: bool = True) -> Path:
    """The issue-19 office: `size` extensions whose endpoints have `options` effective options
    (from 10 up to 48), each with auth and AOR from templates; 90 % with a mailbox, a hint
    and a dial line each, size/100 queues, 10 % registered. `cost`: GetConfig charged as
    Asterisk does."""
    template = ENDPOINT_OPTIONS[: options - OWN_OPTIONS]
    if len(template) != options - OWN_OPTIONS or options - OWN_OPTIONS < 4:
        raise ValueError(f"options: {OWN_OPTIONS + 4} to {OWN_OPTIONS + len(ENDPOINT_OPTIONS)}")
    etc = directory / "pbx-config"
    _common_files(etc)
    pjsip = [
        "[global]\ntype=global\n",
        "[transport-udp]\ntype=transport\nprotocol=udp\nbind=127.0.0.1:5060\n",
        "[tpl-endpoint](!)\n" + "".join(f"{k}={v}\n" for k, v in template),
        "[tpl-auth](!)\ntype=auth\nauth_type=userpass\n",
        "[tpl-aor](!)\ntype=aor\nmax_contacts=1\nremove_existing=yes\nqualify_frequency=60\n"
        "maximum_expiration=7200\nminimum_expiration=60\n",
    ]
    voicemail, plan, contacts = ["[general]\n[default]\n"], [], []
    for i in range(size):
        ext = str(100000 + i)
        group = f"dept{i % 20}"
        has_mailbox = i % MAILBOX_EVERY != MAILBOX_EVERY - 1
        mailbox = f"mailboxes={ext}@default\n" if has_mailbox else f"accountcode={ext}\n"
        pjsip.append(
            f'[{ext}](tpl-endpoint)\ncallerid="User {ext}" <{ext}>\nauth={ext}\naors={ext}\n'
            f"{mailbox}named_call_group={group}\nnamed_pickup_group={group}\n"
            f"[{ext}](tpl-auth)\nusername={ext}\npassword=pw-{ext}-secret\n[{ext}](tpl-aor)\n"
        )
        if has_mailbox:
            voicemail.append(f"{ext} => 1234,User {ext},,,tz=eastern\n")
        plan.append(f"exten => {ext},hint,PJSIP/{ext}\nexten => {ext},1,Dial(PJSIP/{ext},20)\n")
        if i % REGISTERED_EVERY == 0:
            address = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
            contacts.append((ext, f"sip:{ext}@{address}:5060", "Yealink SIP-T46S 66.86.0.15"))
    members = [
        str(100000 + n * EXTENSIONS_PER_QUEUE) for n in range(max(1, size // EXTENSIONS_PER_QUEUE))
    ]
    _write_files(etc, pjsip, voicemail, members, plan)
    pbx = ['version = "22.10.1"', 'system_name = "bench"']
    if cost:
        pbx.append('getconfig_cost = "asterisk"')
    return _office_toml(directory, f"bench {size} x {options} options", contacts, pbx)


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
        body = [
            f'<include>\n<domain name="{domain}"><params>'
            '<param name="allow-empty-password" value="false"/></params><variables>'
            f'<variable name="user_context" value="{domain}"/></variables><groups>'
            '<group name="default"><users>\n'
        ]
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
    lines = [
        f'name = "bench freeswitch {users}"',
        'config_dir = "freeswitch"',
        "[pbx]",
        'version = "1.10.12-release"',
        "[globals]",
        'hostname = "bench"',
    ]
    for user, uri, agent, _ in regs:
        lines += [
            "[[registrations]]",
            f'user = "{user}"',
            f'contact = "{uri}"',
            f'agent = "{agent}"',
            f'call_id = "c-{user}"',
            "expires = 120",
        ]
    office = directory / "office.toml"
    office.write_text("\n".join(lines) + "\n")
    return office, per * domains
