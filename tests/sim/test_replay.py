"""Acceptance: every request captured from a real Asterisk 22, replayed in capture order
against the simulator serving the fixture office, gets the captured answer (varying values
masked: see replay.MASKED_HEADERS). The simulator is faithful by test, not by claim."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from tests.conftest import AGENT_SECRET, FIXTURES
from tests.sim.replay import Exchange, Session, exchanges, mask, split

EXCHANGES = exchanges(FIXTURES / "asterisk-ami")


def _copy_scratch_pjsip(replayer: Replayer) -> None:
    """The capture wrote its naive UpdateConfig to a scratch copy of pjsip.conf that it had
    made beforehand (UpdateConfig cannot create files)."""
    etc = replayer.simulator.ctx.config.root
    shutil.copyfile(etc / "pjsip.conf", etc / "pjsip-naive-updateconfig-test.conf")


def _restore_original_config(replayer: Replayer) -> None:
    """Between the main session and the second one, the capture put the original config files
    back (its later GetConfig shows no trace of the first session's UpdateConfig edits)."""
    shutil.copytree(
        replayer.simulator.office.config_dir, replayer.simulator.ctx.config.root, dirs_exist_ok=True
    )


def _restart_booting(replayer: Replayer) -> None:
    """The capture shut Asterisk down (events_shutdown) and connected while it started."""
    replayer.sessions.clear()
    replayer.call(replayer.simulator.restart(booting=True))


def _finish_booting(replayer: Replayer) -> None:
    """Between these exchanges the contacts were qualified and the registrations attempted
    (events_after_restart): those events reach the boot session and are set aside here."""
    replayer.call(replayer.simulator.settle())
    got = [mask(wire.decode(b[:-4])) for b in replayer.sessions["boot"].read_messages(0, grace=0.2)]
    captured = (FIXTURES / "asterisk-ami" / "transcripts" / "events_after_restart.txt").read_bytes()
    expected = [mask(wire.decode(b[:-4])) for b in split(captured)]
    # The same events; their order follows qualify timing, which is not simulated.
    assert sorted(got) == sorted(expected)


# State the capture set up outside AMI before an exchange.
SETUP: dict[str, Callable[[Replayer], None]] = {
    "update_config_naive_all_sections_named_102-app": _copy_scratch_pjsip,
    "banner_second_session": _restore_original_config,
    "boot_banner": _restart_booting,
    "boot_pjsip_show_registrations_outbound_later": _finish_booting,
}


# Sessions that only listened for events: the FullyBooted after their login was captured as
# the first message of their events file, not with the login.
EVENT_SESSIONS = {"ev", "ev2", "sd"}
FULLY_BOOTED = mask(
    [
        ("Event", "FullyBooted"),
        ("Privilege", "system,all"),
        ("Uptime", "0"),
        ("LastReload", "0"),
        ("Status", "Fully Booted"),
    ]
)


# Lists Asterisk sends in the order of its internal hash table: any order is faithful.
HASH_ORDERED = {"device_state_list", "extension_state_list"}


def in_any_order(messages: list[wire.Message]) -> list[wire.Message]:
    """The list's start and Complete messages where they are, its items sorted."""
    if len(messages) < 3:
        return messages
    return [messages[0], *sorted(messages[1:-1]), messages[-1]]


def describe_difference(expected: list[wire.Message], got: list[wire.Message]) -> str:
    if len(got) != len(expected):
        head = f"{len(expected)} messages captured, {len(got)} received"
    else:
        head = f"{len(expected)} messages"
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            diff = difflib.unified_diff(
                [f"{k}: {v}" for k, v in want],
                [f"{k}: {v}" for k, v in have],
                "captured",
                "simulator",
                lineterm="",
            )
            return f"{head}; message {index + 1} differs:\n" + "\n".join(diff)
    return head


class Replayer:
    """A simulator on its own event loop thread, and the sessions of the capture."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        office = load_office(FIXTURES / "offices" / "northwind.toml")
        self.simulator = Simulator(office)
        asyncio.run_coroutine_threadsafe(self.simulator.start(), self.loop).result(10)
        self.sessions: dict[str, Session] = {}

    def session(self, label: str) -> Session:
        if label not in self.sessions:
            self.sessions[label] = Session(self.simulator.port)
        return self.sessions[label]

    def call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def md5_login_for_this_run(request: bytes, session: Session) -> bytes:
    """An MD5 login's Key answers the server's nonce, which differs in every run: recompute
    it from this run's nonce, the way the captured client computed it (md5(nonce + secret))."""
    message = wire.decode(request[:-4])
    if (wire.get(message, "AuthType") or "").lower() != "md5" or wire.get(message, "Key") is None:
        return request
    key = hashlib.md5(f"{session.challenge}{AGENT_SECRET}".encode()).hexdigest()
    return wire.encode([(k, key if k == "Key" else v) for k, v in message])


@pytest.fixture(scope="module")
def replayer() -> Iterator[Replayer]:
    r = Replayer()
    yield r
    r.close()


@pytest.mark.parametrize("exchange", EXCHANGES, ids=[e.name for e in EXCHANGES])
def test_replay(replayer: Replayer, exchange: Exchange) -> None:
    if exchange.name in SETUP:
        SETUP[exchange.name](replayer)
    session = replayer.session(exchange.session)
    if exchange.request is None:  # the greeting, sent as soon as the connection opens
        assert session.read_line() == exchange.expected
        return
    session.sock.sendall(md5_login_for_this_run(exchange.request, session))
    expected = [mask(wire.decode(block[:-4])) for block in split(exchange.expected)]
    raw = [wire.decode(block[:-4]) for block in session.read_messages(len(expected))]
    for message in raw:
        session.challenge = wire.get(message, "Challenge") or session.challenge
    got = [mask(message) for message in raw]
    if exchange.session in EVENT_SESSIONS and got[len(expected) :] == [FULLY_BOOTED]:
        got = got[: len(expected)]  # captured as the first event of that session's events file
    if exchange.name in HASH_ORDERED:  # Asterisk lists these in hash order (fact 6)
        expected, got = in_any_order(expected), in_any_order(got)
    if got != expected:
        pytest.fail(describe_difference(expected, got))
    if exchange.server_closes:
        assert session.closed_by_server(), "Asterisk closes the connection here"
        del replayer.sessions[exchange.session]
