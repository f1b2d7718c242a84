"""Following a long operation of the daemon from the CLI: its progress as a `rich` bar on a
terminal (files, bytes, rate, time left), as a plain line every `PLAIN_EVERY` seconds (and at
each new phase) otherwise, as JSON lines with `--jsonl`, or not at all with `--json`. Progress
goes to stderr, so stdout holds only the result.

Ctrl-C stops following, never the operation: the daemon carries on, and the note printed
says how to follow it again (`pbx-agent follow ID`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TextIO

import click

from agent import render
from agent.cli.common import EXIT_INTERRUPTED, fail_from_control
from agent.control_client import follow
from agent.errors import ControlError

PLAIN_EVERY = 10.0  # seconds between plain progress lines within one phase

Mode = Literal["tty", "plain", "jsonl", "quiet"]


def estimate(snapshot: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(fraction done, bytes per second, seconds left) of a phase, each None when unknown.
    The fraction is the smaller of bytes and files done where their totals are known (bytes
    may all be read before the files are all checked); an estimated total that is passed
    stays just short of done."""
    seconds = float(snapshot.get("phase_seconds") or 0.0)
    done_bytes, total_bytes = snapshot.get("bytes") or 0, snapshot.get("bytes_total")
    done_files, total_files = snapshot.get("files") or 0, snapshot.get("files_total")
    rate = done_bytes / seconds if seconds > 0.2 and done_bytes else None
    pairs = ((done_bytes, total_bytes), (done_files, total_files))
    known = [done / total for done, total in pairs if total]
    fraction = min(known) if known else None
    if fraction is not None:
        fraction = min(fraction, 0.99 if snapshot.get("estimated") else 1.0)
    left = None
    if fraction and 0 < fraction < 1 and seconds > 0.5:
        left = seconds * (1 - fraction) / fraction
    return fraction, rate, left


def describe(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """The parts of a progress line, as text: files, bytes, rate, time left."""
    _, rate, left = estimate(snapshot)
    about = "about " if snapshot.get("estimated") else ""
    files = f"{snapshot.get('files', 0)} files"
    if snapshot.get("files_total") is not None:
        files = f"{snapshot.get('files', 0)} of {about}{snapshot['files_total']} files"
    size = render.size(snapshot.get("bytes") or 0)
    if snapshot.get("bytes_total"):
        size = f"{size} of {render.size(snapshot['bytes_total'])}"
    return {
        "files": files,
        "bytes": size,
        "rate": f"{render.size(rate)}/s" if rate else "",
        "left": f"{render.duration_short(left)} left" if left is not None else "",
    }


class Display:
    """Shows the progress snapshots of one operation in the chosen `mode`."""

    def __init__(
        self,
        title: str,
        mode: Mode,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.mode = mode
        self.stream = stream or sys.stderr
        self.operation: int | None = None
        self._clock = clock
        self._phase: str | None = None
        self._last_line = 0.0
        self._bar: Any = None
        self._task: Any = None

    def on_operation(self, operation: Mapping[str, Any]) -> None:
        self.operation = int(operation["id"])
        if self.mode == "jsonl":
            self._json({"operation": dict(operation)})

    def on_progress(self, snapshot: Mapping[str, Any]) -> None:
        if self.mode == "jsonl":
            self._json({"progress": dict(snapshot)})
        elif self.mode == "plain":
            self._plain(snapshot)
        elif self.mode == "tty":
            self._tty(snapshot)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _json(self, message: Mapping[str, Any]) -> None:
        click.echo(json.dumps(message, sort_keys=True))  # stdout: the stream is the output

    def _plain(self, snapshot: Mapping[str, Any]) -> None:
        now = self._clock()
        new_phase = snapshot.get("phase") != self._phase
        if not new_phase and now - self._last_line < PLAIN_EVERY:
            return
        self._phase, self._last_line = snapshot.get("phase"), now
        parts = describe(snapshot)
        numbers = ", ".join(p for p in parts.values() if p)
        click.echo(f"{self.title}: {snapshot.get('phase')}: {numbers}", file=self.stream)

    def _tty(self, snapshot: Mapping[str, Any]) -> None:
        """A one-line bar that fits 80 columns: phase, bar, files, bytes, rate, time left."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=12),
                TextColumn("{task.fields[files]}"),
                TextColumn("{task.fields[bytes]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[left]}"),
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task("", total=None, **compact(snapshot))
            self._bar.start()
        fraction, _, _ = estimate(snapshot)
        self._bar.update(
            self._task,
            description=render.clip(str(snapshot.get("phase", "")), 28),
            total=None if fraction is None else 1000,
            completed=0 if fraction is None else int(fraction * 1000),
            **compact(snapshot),
        )


def compact(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """`describe` in fewer characters, for the bar: ``2/~22 files``, ``ETA 5 s``."""
    _, rate, left = estimate(snapshot)
    files = str(snapshot.get("files", 0))
    if snapshot.get("files_total") is not None:
        about = "~" if snapshot.get("estimated") else ""
        files = f"{files}/{about}{snapshot['files_total']}"
    return {
        "files": f"{files} files",
        "bytes": render.size(snapshot.get("bytes") or 0),
        "rate": f"{render.size(rate)}/s" if rate else "",
        "left": f"ETA {render.duration_short(left)}" if left is not None else "",
    }


def mode_for(as_json: bool, as_jsonl: bool) -> Mode:
    if as_jsonl:
        return "jsonl"
    if as_json:
        return "quiet"
    return "tty" if sys.stderr.isatty() else "plain"


def run_followed(
    socket: Path,
    command: str,
    args: Mapping[str, Any],
    *,
    title: str,
    mode: Mode,
) -> Any:
    """Ask for `command` and follow it to its end; its result. Ctrl-C stops following and
    says how to pick the operation up again (exit 130); a failure exits 1 (2 when the site's
    configuration does not allow it)."""
    display = Display(title, mode)
    try:
        return follow(
            socket,
            command,
            args,
            on_operation=display.on_operation,
            on_progress=display.on_progress,
        )
    except KeyboardInterrupt:
        display.close()
        where = f"operation {display.operation}" if display.operation else "an operation"
        again = (
            f"pbx-agent follow {display.operation}"
            if display.operation
            else "pbx-agent operations"
        )
        click.echo(
            f"\nstopped following: {title} goes on in the daemon as {where}; follow it again "
            f"with `{again}` (its result stays there once it ended)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except ControlError as exc:
        display.close()
        fail_from_control(exc)
    finally:
        display.close()
