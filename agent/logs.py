"""Structured logging: JSON lines for journald and files, a readable console on a TTY, and a
redaction processor so that no configured secret value ever reaches a log line. When stderr is
the journal (systemd's `$JOURNAL_STREAM`), each line starts with its syslog priority (`<3>`
for errors...), which journald strips and records, so `journalctl -p warning` works."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "***"
SECRET_KEY = re.compile(r"secret|passw|token|private|credential|^key$|_key$", re.IGNORECASE)


class Redactor:
    """Masks every registered secret value in every string of an event, however nested, and
    the value of any key that looks like it holds a secret."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self._secrets.update(v for v in values if v)

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event.items()}

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and SECRET_KEY.search(key) and value not in (None, "", MASK):
            return MASK
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, MutableMapping):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._clean(None, v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        return value

    def clean(self, value: Any) -> Any:
        """`value` (any JSON-like structure) with every secret masked."""
        return self._clean(None, value)

    def scrub(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text


_redactor = Redactor()


def add_secrets(values: Iterable[str]) -> None:
    """Register secret values loaded after `configure_logging` (e.g. a rotated key)."""
    _redactor.add(values)


def scrub(text: str) -> str:
    """`text` with every registered secret value masked (for text leaving the process other
    than through a log line, e.g. an event's summary)."""
    return _redactor.scrub(text)


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Set up structlog and route stdlib logging (panoramisk uses it) through the same chain."""
    out = stream if stream is not None else sys.stderr
    _redactor.add(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if use_json:
        final: list[Processor] = [
            structlog.processors.format_exc_info,
            _redactor,
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [
            _scrub_exc_info,
            _redactor,
            structlog.dev.ConsoleRenderer(colors=out.isatty() and not os.environ.get("NO_COLOR")),
        ]
    formatter_class = JournalFormatter if is_journal(out) else structlog.stdlib.ProcessorFormatter
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        formatter_class(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paramiko logs every SSH session at INFO, aiomqtt/paho ("mqtt") every packet at DEBUG
    # and APScheduler every job it adds and runs at INFO; our own events say what was done,
    # so keep only their warnings.
    for chatty in ("paramiko", "mqtt", "apscheduler"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal: systemd sets `$JOURNAL_STREAM` to the device and inode
    of the stream it connected to stdout/stderr (systemd.exec(5))."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald records for a Python log level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(structlog.stdlib.ProcessorFormatter):
    """Prefixes every line of a record with `<N>`, its syslog priority (sd-daemon(3))."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def _scrub_exc_info(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Console renderer prints tracebacks itself: pre-render them so they can be redacted."""
    if event.get("exc_info"):
        event = structlog.processors.format_exc_info(logger, name, event)
    return event
