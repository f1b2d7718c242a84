"""No configured secret value ever reaches a log line, whatever path it takes."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from agent.logs import MASK, Redactor, configure_logging

SECRET = "nwT3st-ami-agent-8Kq2"


def test_redactor_masks_values_everywhere_and_secret_looking_keys() -> None:
    redactor = Redactor()
    redactor.add([SECRET])
    with capture_logs(processors=[redactor]) as logs:
        structlog.get_logger().info(
            f"login with {SECRET}",
            nested={"list": [f"x{SECRET}y", 3], "ok": "plain"},
            Secret="anything",
            ami_password="other",
            count=3,
        )
    entry = logs[0]
    assert entry["event"] == f"login with {MASK}"
    assert entry["nested"] == {"list": [f"x{MASK}y", 3], "ok": "plain"}
    assert entry["Secret"] == MASK and entry["ami_password"] == MASK
    assert entry["count"] == 3
    assert SECRET not in repr(logs)


def test_rendered_json_lines_never_contain_the_secret(json_log: io.StringIO) -> None:
    log = structlog.get_logger("test")
    log.info("event text " + SECRET, field=SECRET, nested={"deep": [SECRET]})
    try:
        raise RuntimeError(f"AMI refused {SECRET}")
    except RuntimeError:
        log.exception("failure")
    logging.getLogger("panoramisk.manager").warning("Login: Secret: %s", SECRET)
    text = json_log.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == [
        f"event text {MASK}",
        "failure",
        f"Login: Secret: {MASK}",
    ]
    assert "RuntimeError: AMI refused ***" in lines[1]["exception"]
    assert lines[2]["logger"] == "panoramisk.manager"
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_console_format_redacts_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream, secrets=[SECRET])
    try:
        structlog.get_logger().info("hello", secret_value=SECRET, text=SECRET)
        try:
            raise ValueError(SECRET)
        except ValueError:
            structlog.get_logger().exception("boom")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert "hello" in stream.getvalue() and SECRET not in stream.getvalue()


def test_journal_gets_each_line_prefixed_with_its_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under systemd, stderr is the journal ($JOURNAL_STREAM names it): `<N>` starts each line,
    so `journalctl -p warning` shows warnings and errors, not everything at priority 6."""
    with (tmp_path / "journal").open("w+") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        configure_logging("debug", "auto", stream=stream, secrets=[SECRET])
        try:
            log = structlog.get_logger("test")
            log.debug("details")
            log.info("started")
            log.warning("PBX poll failed", error=SECRET)
            try:
                raise RuntimeError("multi\nline")
            except RuntimeError:
                log.exception("failure")
            logging.getLogger("panoramisk.manager").critical("gone")
        finally:
            structlog.reset_defaults()
            logging.getLogger().handlers.clear()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    records = [json.loads(line[3:]) for line in lines]  # JSON after the prefix, one line each
    assert [r["level"] for r in records] == ["debug", "info", "warning", "error", "critical"]
    assert SECRET not in "".join(lines)


@pytest.mark.parametrize("journal_stream", ["", "1:2", "garbage"])
def test_no_priority_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal_stream: str
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream)
    with (tmp_path / "log").open("w+") as stream:
        configure_logging("info", "json", stream=stream)
        try:
            structlog.get_logger().warning("plain")
        finally:
            structlog.reset_defaults()
            logging.getLogger().handlers.clear()
        stream.seek(0)
        assert json.loads(stream.read())["event"] == "plain"


def test_console_lines_in_the_journal_are_all_prefixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        configure_logging("info", "console", stream=stream)
        try:
            try:
                raise ValueError("boom")
            except ValueError:
                structlog.get_logger().exception("failed")
        finally:
            structlog.reset_defaults()
            logging.getLogger().handlers.clear()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
