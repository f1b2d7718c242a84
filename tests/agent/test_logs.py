"""No configured secret value ever reaches a log line, whatever path it takes."""

from __future__ import annotations

import io
import json
import logging

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
