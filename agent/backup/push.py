"""Pushing a restored backup to a (replacement) PBX: first a plan the technician reads (files
added, files changed with a diff, files only on the PBX, which are never deleted), then, only
when asked, the upload of the added and changed files.

Runs in a worker thread (paramiko is blocking). The tree comes from `restore.restore`, so it
was decrypted, authenticated and checked against the manifest before anything is compared.
"""

from __future__ import annotations

import contextlib
import difflib
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from agent.backup.archive import sha256_file
from agent.progress import ProgressCallback
from drivers.sftp_target import SftpTarget, upload_tree

PARTIAL_SUFFIX = ".pbx-agent-partial"  # drivers.sftp_target's temp name for a file it writes

DIFF_LIMIT = 256 * 1024  # bytes of a file shown as a diff; bigger files are "changed" only
DIFF_LINES = 200


@dataclass
class PushPlan:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    only_on_pbx: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def local_files(tree: Path) -> list[str]:
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())


def _diff(relative: str, pbx: bytes, backup: bytes) -> str | None:
    try:
        old, new = pbx.decode().splitlines(), backup.decode().splitlines()
    except UnicodeDecodeError:
        return None  # binary: listed as changed without a diff
    lines = list(
        difflib.unified_diff(old, new, f"pbx/{relative}", f"backup/{relative}", lineterm="")
    )
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... {len(lines) - DIFF_LINES} more diff lines"]
    return "\n".join(lines)


def plan(target: SftpTarget, tree: Path, progress: ProgressCallback | None = None) -> PushPlan:
    result = PushPlan()
    ours = local_files(tree)
    theirs = {f.path for f in target.files()}
    for relative in ours:
        if progress is not None:
            progress(1, 0)
        if relative not in theirs:
            result.added.append(relative)
            continue
        local = tree / relative
        if target.sha256(relative) == sha256_file(local):
            result.unchanged += 1
            continue
        result.changed.append(relative)
        if local.stat().st_size <= DIFF_LIMIT:
            diff = _diff(relative, target.read(relative, DIFF_LIMIT + 1), local.read_bytes())
            if diff is not None:
                result.diffs[relative] = diff
    result.only_on_pbx = sorted(theirs - set(ours))
    return result


def remove_partials(target: SftpTarget) -> list[str]:
    """Remove the temp files (`.NAME.pbx-agent-partial`) a push killed mid-upload left on the
    PBX: restored configuration, never the PBX's own files."""
    removed = []
    for item in list(target.files()):
        name = posixpath.basename(item.path)
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
            with contextlib.suppress(OSError, paramiko.SSHException):
                target.sftp.remove(target.full_path(item.path))
                removed.append(item.path)
    return removed


def push(
    target: SftpTarget, tree: Path, apply: bool, progress: ProgressCallback | None = None
) -> PushPlan:
    """The plan; with `apply`, the added and changed files are written to the PBX too.
    `progress` is told each file compared."""
    result = plan(target, tree, progress)
    if apply:
        upload_tree(target, tree, result.added + result.changed)
    return result
