"""The CLI's side of the control socket: a reply as large as a big office's count report is
read whole; one past the bound is refused with the bound named, not as a malformed reply; a
field sent as a line of its own comes back decoded, or as it was encoded when asked so."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import control_client
from agent.errors import ControlError


@pytest.fixture
def daemon_replying(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A socket that answers each connection with the next line of the list, after reading
    the request."""
    path = tmp_path / "control.sock"
    replies: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as requests, contextlib.suppress(OSError):
                requests.readline()
                conn.sendall(replies.pop(0))  # a client refusing a long reply hangs up early

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, replies
    server.close()


def test_a_reply_the_size_of_a_50000_seat_count_is_read_whole(
    daemon_replying: tuple[Path, list[bytes]],
) -> None:
    path, replies = daemon_replying
    seats = [{"extension": str(100000 + n), "padding": "x" * 700} for n in range(50_000)]
    line = json.dumps({"ok": True, "result": {"report": {"seats": seats}}}).encode() + b"\n"
    assert len(line) > 32 * 1024 * 1024
    replies.append(line)
    result = control_client.request(path, "count", timeout=30)
    assert len(result["report"]["seats"]) == 50_000


def test_a_reply_past_the_bound_is_refused_naming_it(
    daemon_replying: tuple[Path, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, replies = daemon_replying
    monkeypatch.setattr(control_client, "MAX_REPLY", 1024 * 1024)
    replies.append(json.dumps({"ok": True, "result": "x" * (2 * 1024 * 1024)}).encode() + b"\n")
    with pytest.raises(ControlError, match="longer than 1 MiB"):
        control_client.request(path, "count", timeout=30)


def test_attached_fields_are_decoded_or_left_as_sent(
    daemon_replying: tuple[Path, list[bytes]],
) -> None:
    path, replies = daemon_replying
    report = {"billable": 2, "seats": [{"extension": "101"}, {"extension": "102"}]}
    encoded = json.dumps(report, sort_keys=True).encode()
    head = {"ok": True, "result": {"usage": None}, "attached": ["report"]}
    replies += [json.dumps(head).encode() + b"\n" + encoded + b"\n"] * 2
    assert control_client.request(path, "count") == {"usage": None, "report": report}
    raw = control_client.request(path, "count", undecoded=("report",))["report"]
    assert isinstance(raw, control_client.Encoded) and raw == encoded


def test_a_reply_cut_before_its_attached_field_is_refused(
    daemon_replying: tuple[Path, list[bytes]],
) -> None:
    path, replies = daemon_replying
    head = {"ok": True, "result": {"usage": None}, "attached": ["report"]}
    replies.append(json.dumps(head).encode() + b"\n" + b'{"billable": 2')
    with pytest.raises(ControlError, match="in the middle of its reply"):
        control_client.request(path, "count", undecoded=("report",))
