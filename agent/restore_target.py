"""Where `backup restore --to DIR` may put files. The daemon writes them from inside its
sandbox (its own /tmp, no /home or /root, a read-only system), so a folder the operator sees
may not exist, or not be writable, for the service. The CLI creates DIR with a marker file
holding a random token; the daemon restores only into a folder where it reads that token and
may write, and otherwise refuses, naming the place it can reach."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from agent.config.secrets import user_name
from agent.errors import BackupError

MARKER = ".pbx-agent-restore-target"


def prepare(target: Path) -> tuple[str, list[Path]]:
    """Create `target` (a new or empty folder) with the marker in it; return the token and the
    folders created, outermost first. Run as root, each new folder takes its parent's owner,
    so a folder made below the service's state folder belongs to the service."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new or empty folder")
    missing = [p for p in (target, *target.parents) if not p.exists()][::-1]
    created = []
    try:
        for folder in missing:
            folder.mkdir(mode=0o755)  # replaced by the restored tree, or removed
            created.append(folder)
            if os.geteuid() == 0:
                parent = folder.parent.stat()
                os.chown(folder, parent.st_uid, parent.st_gid)
        token = secrets.token_hex(16)
        marker = target / MARKER
        marker.write_text(token)
        marker.chmod(0o644)  # the service reads it; a random token is no secret
    except OSError as exc:
        withdraw(target, created)
        raise BackupError(f"cannot create {target}: {exc.strerror or exc}") from exc
    return token, created


def withdraw(target: Path, created: list[Path]) -> None:
    """Undo `prepare` after a refused or failed restore: the marker and the empty folders."""
    with contextlib.suppress(OSError):
        (target / MARKER).unlink(missing_ok=True)
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def claim(target: Path, token: str, allowed: Path) -> None:
    """In the daemon: raise BackupError unless this process sees `target` as the CLI does (the
    marker with `token`) and may write there and beside it. The marker is removed."""
    try:
        seen = (target / MARKER).read_text()
        if not token or seen != token:
            raise _refused(target, allowed, "the service sees another folder there")
        (target / MARKER).unlink()
        os.rmdir(tempfile.mkdtemp(prefix=".pbx-agent-probe-", dir=target.parent))
    except FileNotFoundError as exc:
        why = "the service does not see that folder: it has its own /tmp, and no /home or /root"
        raise _refused(target, allowed, why) from exc
    except OSError as exc:
        why = f"{(exc.strerror or str(exc)).lower()} for the service (user {user_name()})"
        raise _refused(target, allowed, why) from exc


def _refused(target: Path, allowed: Path, why: str) -> BackupError:
    instead = f"restore under {allowed}/ instead"
    return BackupError(f"the service cannot reach {target} ({why}); {instead}")
