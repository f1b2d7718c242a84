"""Malformed and hostile inputs for every boundary where the agent reads untrusted bytes: MQTT
commands, licence answers and tokens, control-socket requests. Sizes, nesting depths,
encodings, types, huge integers, duplicate keys, times out of range; many are correctly
signed, so that what comes after the signature check is tried too. Each is (label, bytes)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.licence.token import FEATURES
from tests.licence_server import b64url

Inputs = list[tuple[str, bytes]]

DEEP = b"[" * 5000
HUGE = b"9" * 5000


def iso(moment: datetime) -> str:
    return moment.isoformat()


# -- MQTT commands -------------------------------------------------------------------------


def command_body(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex,
        "command": "count-now",
        "site_id": "test-site",
        "issued_at": iso(now),
        "expires_at": iso(now + timedelta(minutes=5)),
        "nonce": uuid.uuid4().hex,
        "args": {},
    } | changes


def signed_raw(key: Ed25519PrivateKey, payload: bytes, key_id: str = "central") -> bytes:
    signature = b64url(key.sign(payload))
    return json.dumps(
        {"key_id": key_id, "payload": b64url(payload), "signature": signature}
    ).encode()


def signed_body(key: Ed25519PrivateKey, **changes: Any) -> bytes:
    return signed_raw(key, json.dumps(command_body(**changes)).encode())


def envelope(
    key_id: bytes = b'"central"', payload: bytes = b'"e30"', sig: bytes = b'"AA"'
) -> bytes:
    return b'{"key_id": ' + key_id + b', "payload": ' + payload + b', "signature": ' + sig + b"}"


def hostile_commands(central: Ed25519PrivateKey) -> Inputs:
    """Commands for `cmd/count-now`, none of which may run."""
    good = json.dumps(command_body()).encode()
    sig = b64url(central.sign(good)).encode()
    pay = b64url(good).encode()
    quoted_sig, quoted_pay = b'"' + sig + b'"', b'"' + pay + b'"'
    unsigned: Inputs = [
        ("empty", b""),
        ("null", b"null"),
        ("array", b"[]"),
        ("number", b"42"),
        ("string", b'"count-now"'),
        ("not JSON", b"not json at all"),
        ("invalid UTF-8", b"\xff\xfe\x00garbage"),
        ("UTF-16", envelope(payload=quoted_pay, sig=quoted_sig).decode().encode("utf-16")),
        ("latin-1 key_id", envelope(key_id=b'"caf\xe9"', payload=quoted_pay, sig=quoted_sig)),
        ("5000 brackets", DEEP),
        ("2000 nested objects", b'{"a":' * 2000 + b"1" + b"}" * 2000),
        ("key_id of 5000 digits", envelope(key_id=HUGE, payload=quoted_pay, sig=quoted_sig)),
        ("key_id 1e400", envelope(key_id=b"1e400", payload=quoted_pay, sig=quoted_sig)),
        ("key_id -0", envelope(key_id=b"-0")),
        ("key_id null", envelope(key_id=b"null", payload=quoted_pay, sig=quoted_sig)),
        ("key_id list", envelope(key_id=b'["central"]', payload=quoted_pay, sig=quoted_sig)),
        ("key_id object", envelope(key_id=b'{"id": "central"}')),
        ("key_id true", envelope(key_id=b"true")),
        ("key_id empty", envelope(key_id=b'""')),
        ("key_id 65 chars", envelope(key_id=b'"' + b"c" * 65 + b'"')),
        ("key_id newline", envelope(key_id=b'"central\\n"', payload=quoted_pay, sig=quoted_sig)),
        ("key_id surrogate", envelope(key_id=b'"\\ud800"')),
        (
            "key_id twice",
            b'{"key_id": "other", "key_id": "central", "payload": '
            + quoted_pay
            + b', "signature": '
            + quoted_sig
            + b"}",
        ),
        ("no payload", b'{"key_id": "central", "signature": ' + quoted_sig + b"}"),
        ("payload number", envelope(payload=b"12345", sig=quoted_sig)),
        ("payload not base64", envelope(payload=b'"!!!***"', sig=quoted_sig)),
        ("payload non-ASCII", envelope(payload='"\u00e9\u00e9"'.encode(), sig=quoted_sig)),
        ("no signature", b'{"key_id": "central", "payload": ' + quoted_pay + b"}"),
        ("signature list", envelope(payload=quoted_pay, sig=b'["' + sig + b'"]')),
        ("signature short", envelope(payload=quoted_pay, sig=b'"AAAA"')),
        (
            "signature of other bytes",
            envelope(payload=quoted_pay, sig=b'"' + b64url(central.sign(b"{}")).encode() + b'"'),
        ),
        ("16 KiB + 1", envelope(payload=b'"' + b"A" * (16 * 1024) + b'"', sig=quoted_sig)),
        ("1 MiB", b"{" + b" " * (1024 * 1024) + b"}"),
        ("NaN", envelope(key_id=b"NaN")),
        ("Infinity", envelope(key_id=b"Infinity")),
    ]
    later = datetime.now(UTC) + timedelta(minutes=5)
    body_sig = [
        ("signed garbage", b"garbage"),
        ("signed 5000 brackets", DEEP),
        (
            "signed args 50 deep",
            json.dumps(command_body()).encode()[:-1] + b', "x": ' + b"[" * 50 + b"]" * 50 + b"}",
        ),
        (
            "signed args huge integer",
            json.dumps(command_body()).encode()[:-1] + b', "n": ' + HUGE + b"}",
        ),
        ("signed expires_at 5000 digits", _with(command_body(), "expires_at", HUGE)),
        ("signed UTF-16", json.dumps(command_body()).encode("utf-16")),
        ("signed invalid UTF-8", b'{"command": "count-now\xff"}'),
        ("signed array", b"[]"),
        ("signed NaN", _with(command_body(), "nonce", b"NaN")),
        (
            "signed command twice",
            _with(command_body(), "command", b'"count-now", "command": "diag"'),
        ),
        ("signed nonce surrogate", _with(command_body(), "nonce", b'"\\ud800abcdefgh"')),
    ]
    signed_bodies: Inputs = [(label, signed_raw(central, raw)) for label, raw in body_sig]
    signed_fields: Inputs = [
        ("issued_at in 2099", signed_body(central, issued_at="2099-01-01T00:00:00+00:00")),
        ("issued_at missing", signed_body(central, issued_at=None)),
        ("issued_at not a time", signed_body(central, issued_at="yesterday")),
        ("issued_at number", signed_body(central, issued_at=1700000000)),
        ("expires_at overflow", signed_body(central, expires_at="9999-12-31T23:59:59-23:59")),
        ("expires_at naive", signed_body(central, expires_at="2030-01-01T00:00:00")),
        ("expires two days on", signed_body(central, expires_at=iso(later + timedelta(days=2)))),
        ("expired", signed_body(central, expires_at=iso(later - timedelta(hours=1)))),
        ("nonce newline", signed_body(central, nonce="abcdefgh\nijk")),
        ("nonce 5000 chars", signed_body(central, nonce="n" * 5000)),
        ("nonce short", signed_body(central, nonce="x")),
        ("id path", signed_body(central, id="../../etc/passwd")),
        ("id number", signed_body(central, id=12345)),
        ("args list", signed_body(central, args=[1, 2])),
        ("other command", signed_body(central, command="backup-now")),
        ("other site", signed_body(central, site_id="other-site")),
        ("signed by a stranger", signed_body(Ed25519PrivateKey.generate())),
    ]
    return unsigned + signed_bodies + signed_fields


def _with(body: dict[str, Any], key: str, raw_value: bytes) -> bytes:
    """`body` as JSON with `key`'s value replaced by the raw bytes `raw_value`."""
    marker = "@@RAW@@"
    text = json.dumps(body | {key: marker}).encode()
    return text.replace(json.dumps(marker).encode(), raw_value)


# -- licence answers and tokens ------------------------------------------------------------


def token_raw(key: Ed25519PrivateKey, payload: bytes) -> str:
    return f"{b64url(payload)}.{b64url(key.sign(payload))}"


def answer(token: str) -> bytes:
    return json.dumps({"token": token}).encode()


def hostile_licence_answers(vendor: Ed25519PrivateKey, payload: dict[str, Any]) -> Inputs:
    """Bodies for `GET /v1/sites/{site}/licence`; `payload` is a valid token's payload, which
    the hostile tokens vary. None may be accepted."""
    good = json.dumps(payload).encode()
    sig = b64url(vendor.sign(good))
    answers: Inputs = [
        ("empty", b""),
        ("garbage", b"garbage"),
        ("array", b"[]"),
        ("null", b"null"),
        ("string", b'"token"'),
        ("5000 brackets", DEEP),
        ("token 100 deep", b'{"token": ' + b"[" * 100 + b"]" * 100 + b"}"),
        ("token of 5000 digits", b'{"token": ' + HUGE + b"}"),
        ("token 1e999", b'{"token": 1e999}'),
        ("token NaN", b'{"token": NaN}'),
        ("token null", b'{"token": null}'),
        ("token list", b'{"token": ["a.b"]}'),
        ("token object", b'{"token": {"a": 1}}'),
        ("token empty", answer("")),
        ("three parts", answer("a.b.c")),
        ("no dot", answer("abc")),
        ("not base64", answer("!!!.###")),
        ("non-ASCII", answer("\u00e9.\u00e9")),
        ("invalid UTF-8", b'{"token": "\xff\xfe"}'),
        ("UTF-16", answer(f"{b64url(good)}.{sig}").decode().encode("utf-16")),
        ("64 KiB + 1", b'{"token": "' + b"A" * (64 * 1024) + b'"}'),
        ("token 20 KB", answer("A" * 20_000 + "." + sig)),
        ("token twice", b'{"token": "x.y", "token": "' + f"{b64url(good)}.{sig}".encode() + b'"}'),
        ("token surrogate", b'{"token": "\\ud800.AA"}'),
        ("signature truncated", answer(f"{b64url(good)}.{sig[:20]}")),
        ("signature AA", answer(f"{b64url(good)}.AA")),
        ("signed by a stranger", answer(token_raw(Ed25519PrivateKey.generate(), good))),
    ]
    raw_payloads: Inputs = [
        ("payload garbage", b"garbage"),
        ("payload 5000 brackets", DEEP),
        ("payload array", b"[]"),
        ("payload UTF-16", good.decode().encode("utf-16")),
        ("payload invalid UTF-8", good[:-1] + b', "x": "\xff"}'),
        ("serial of 5000 digits", _with(payload, "serial", HUGE)),
        ("serial 1e999", _with(payload, "serial", b"1e999")),
        ("max_users 31 digits", _with(payload, "max_users", b"1" + b"0" * 30)),
        ("site_id of 5000 digits", _with(payload, "site_id", HUGE)),
        ("kid of 5000 digits", _with(payload, "kid", HUGE)),
        ("entitlements 10 deep", _with(payload, "entitlements", b"[" * 10 + b"]" * 10)),
        ("status twice", _with(payload, "status", b'"lapsed", "status": "active"')),
        ("NaN max_users", _with(payload, "max_users", b"NaN")),
        ("kid surrogate", _with(payload, "kid", b'"\\udc00"')),
    ]
    changed: list[tuple[str, dict[str, Any]]] = [
        ("issued_at in 2099", {"issued_at": "2099-01-01T00:00:00+00:00"}),
        ("issued_at missing", {"issued_at": None}),
        ("expires_at not a time", {"expires_at": "soon"}),
        ("expires_at overflow", {"expires_at": "9999-12-31T23:59:59-23:59"}),
        ("expires_at naive", {"expires_at": "2030-01-01T00:00:00"}),
        ("serial -1", {"serial": -1}),
        ("serial string", {"serial": "7"}),
        ("serial true", {"serial": True}),
        ("serial lower than seen", {"serial": 0}),
        ("entitlements yes", {"entitlements": dict.fromkeys(FEATURES, "yes")}),
        ("entitlements missing", {"entitlements": None}),
        ("status ACTIVE", {"status": "ACTIVE"}),
        ("status list", {"status": ["active"]}),
        ("other site", {"site_id": "other-site"}),
        ("kid path", {"kid": "../../etc"}),
        ("subscription missing", {"subscription_id": None}),
    ]
    tokens = [(label, answer(token_raw(vendor, raw))) for label, raw in raw_payloads]
    tokens += [
        (label, answer(token_raw(vendor, json.dumps(payload | change).encode())))
        for label, change in changed
    ]
    return answers + tokens


# -- control-socket requests ---------------------------------------------------------------


def request(command: Any, args: Any = None) -> bytes:
    body = {"command": command} | ({} if args is None else {"args": args})
    return json.dumps(body).encode() + b"\n"


def hostile_control_requests() -> Inputs:
    """Requests for the control socket, each to be refused with a one-line reason."""
    events = b'{"command": "events", "args": {"after": '
    return [
        ("empty line", b"\n"),
        ("not JSON", b"not json\n"),
        ("null", b"null\n"),
        ("array", b"[]\n"),
        ("number", b"42\n"),
        ("string", b'"status"\n'),
        ("no command", b"{}\n"),
        ("command number", request(5)),
        ("command null", request(None)),
        ("command list", request(["status"])),
        ("unknown command", request("format-disk")),
        ("command 10 KB", request("x" * 10_000)),
        ("command upper case", request("STATUS")),
        ("command with space", request("status ")),
        ("command surrogate", b'{"command": "\\ud800"}\n'),
        ("command twice", b'{"command": "ping", "command": "status"}\n'),
        ("5000 brackets", DEEP + b"\n"),
        ("args 100 deep", b'{"command": "status", "args": ' + b"[" * 100 + b"]" * 100 + b"}\n"),
        ("invalid UTF-8", b'{"command": "status\xff"}\n'),
        ("UTF-16", request("status").decode().encode("utf-16") + b"\n"),
        ("no newline", b'{"command": "status"}'),
        ("70 KB line", b'{"command": "status", "x": "' + b"a" * 70_000 + b'"}\n'),
        ("args null", b'{"command": "ping", "args": null}\n'),
        ("args list", request("events", [])),
        ("args string", request("events", "after=1")),
        ("status with args", request("status", {"x": 1})),
        ("after string", request("events", {"after": "x"})),
        ("after 5000 digits", events + HUGE + b"}}\n"),
        ("after -1", request("events", {"after": -1})),
        ("after float", request("events", {"after": 1.5})),
        ("after bool", request("events", {"after": True})),
        ("after null", request("events", {"after": None})),
        ("after NaN", events + b"NaN}}\n"),
        ("after 1e999", events + b"1e999}}\n"),
        ("after twice", b'{"command": "events", "args": {"after": 0, "after": 1}}\n'),
        ("limit 31 digits", b'{"command": "events", "args": {"limit": 1' + b"0" * 30 + b"}}\n"),
        ("limit too large", request("events", {"limit": 10_000_000})),
        ("limit list", request("events", {"limit": [1]})),
        ("limit negative", request("events", {"limit": -1})),
        ("verify without id", request("backup-verify", {})),
        ("verify id number", request("backup-verify", {"id": 5})),
        ("verify id NUL", request("backup-verify", {"id": "a\u0000b"})),
        ("verify id 5000 chars", request("backup-verify", {"id": "i" * 5000})),
        ("restore without to", request("backup-restore", {"id": "x"})),
        ("restore to NUL", request("backup-restore", {"id": "x", "to": "/tmp/\u0000x"})),
        ("restore extra", request("backup-restore", {"id": "x", "to": "/tmp/x", "force": True})),
        ("to-pbx apply yes", request("backup-restore-pbx", {"id": "x", "apply": "yes"})),
        ("count cached 1", request("count", {"cached": 1})),
        ("usage-export -5", request("usage-export", {"limit": -5})),
        ("refresh force", request("licence-refresh", {"force": True})),
        ("backup reason 500", request("backup-now", {"reason": "r" * 500})),
        ("backup reason empty", request("backup-now", {"reason": ""})),
        ("features args", request("features", {"all": True})),
    ]
