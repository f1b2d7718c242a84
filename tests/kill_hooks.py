"""Runs the agent's CLI (`pbx-agent ...`) with a named point where the process kills itself
with SIGKILL, for crash tests that must hit an exact moment (inside a transaction, right after
a rename) rather than a random one:

    python -m tests.kill_hooks HOOK run --config agent.toml

The process writes a line to $PBX_AGENT_KILL_MARK (when set) just before it dies, so a test
can tell that the hook fired."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _die(what: str) -> None:
    mark = os.environ.get("PBX_AGENT_KILL_MARK")
    if mark:
        with open(mark, "a") as out:
            out.write(what + "\n")
            out.flush()
            os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def _after(module: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Replace `module.name` by a version that runs it, then dies when `when(...)` holds."""
    original = getattr(module, name)

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            _die(f"{module.__name__}.{name}")
        return result

    setattr(module, name, patched)


def _after_async(cls: Any, name: str, when: Callable[..., bool]) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        if when(*args, **kwargs):
            _die(f"{cls.__name__}.{name}")
        return result

    setattr(cls, name, patched)


def install(hook: str) -> None:
    from agent.backup import catalog
    from agent.counting import history
    from agent.health import monitor
    from agent.licence import service as licence_service
    from agent.telemetry.service import Telemetry

    def licence_state(*_: Any, values: dict[str, str], **__: Any) -> bool:
        return "licence_state" in values

    hooks: dict[str, Callable[[], None]] = {
        # Inside the transaction: the record's SQL ran, its outbox row is not yet written.
        "usage-inside": lambda: _after(history, "add_usage"),
        "event-inside": lambda: _after(monitor, "_put_state"),
        "licence-inside": lambda: _after(licence_service, "put_meta", licence_state),
        "backup-inside": lambda: _after(catalog, "mark_reported"),
        # When the usage message is handed to telemetry: whatever was stored before is
        # stored without its message (the old design committed the report first).
        "usage-queued": lambda: _before_async(
            Telemetry, "commit", lambda _write, *out, **_: any(o.topic == "usage" for o in out)
        ),
        # Right after the commit, before the publisher could send anything.
        "usage-committed": lambda: _after_async(
            Telemetry, "commit", lambda _write, *out, **_: any(o.topic == "usage" for o in out)
        ),
        # A backup: after the archive's rename, before its catalog row (an orphan file).
        "backup-renamed": lambda: _before(catalog, "insert"),
        # Retention: after a row is marked for deletion, before its file goes.
        "retention-marked": lambda: _after(
            catalog, "set_status", lambda *a, **k: a[2] == "deleting"
        ),
    }
    hooks[hook]()


def _before_async(cls: Any, name: str, when: Callable[..., bool]) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            _die(f"before {cls.__name__}.{name}")
        return await original(self, *args, **kwargs)

    setattr(cls, name, patched)


def _before(module: Any, name: str) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        _die(f"before {module.__name__}.{name}")
        return original(*args, **kwargs)

    setattr(module, name, patched)


def main() -> None:
    hook, *rest = sys.argv[1:]
    install(hook)
    from agent.cli import main as cli_main

    sys.argv = ["pbx-agent", *rest]
    cli_main()


if __name__ == "__main__":
    main()
