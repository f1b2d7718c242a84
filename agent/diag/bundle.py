"""`pbx-agent diag --bundle FILE`: a tar.gz a technician can send to support, with the diag
results, the configuration, recent logs and events, versions and the catalog summaries.

Every configured secret value is masked in every file of the bundle, including the values of
secret files the config names even when the config does not load (a wrong mode, say); private
keys and the state database are never included.
"""

from __future__ import annotations

import io
import json
import platform
import re
import shutil
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from agent import __version__
from agent.diag.checks import Check
from agent.logs import MASK, Redactor

PACKAGES = ("panoramisk", "aiomqtt", "paramiko", "pyrage", "cryptography", "requests", "structlog")
SECRET_FILE_KEYS = re.compile(r"(secret|password)_file$")
DAEMON_VIEWS = ("status", "events", "backup-list", "licence-status", "features")


def _secret_files(config_text: str, base: Path) -> list[Path]:
    try:
        data = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError:
        return []
    found: list[Path] = []

    def walk(table: Any) -> None:
        if isinstance(table, dict):
            for key, value in table.items():
                if isinstance(value, str) and SECRET_FILE_KEYS.search(key):
                    path = Path(value)
                    found.append(path if path.is_absolute() else base / path)
                walk(value)

    walk(data)
    return found


def redactor_for(config_path: Path, known: Iterable[str] = ()) -> Redactor:
    """Masks the secrets the config holds or names, whether or not the config loads."""
    redactor = Redactor()
    redactor.add(known)
    try:
        text = config_path.read_text(errors="replace")
    except OSError:
        return redactor
    for path in _secret_files(text, config_path.resolve().parent):
        try:
            redactor.add([path.read_text(errors="replace").strip()])
        except OSError:
            continue
    credentials = config_path.resolve().parent  # where LoadCredential= sources live
    for name in re.findall(r'_credential\s*=\s*"([^"]+)"', text):
        try:
            redactor.add([(credentials / name).read_text(errors="replace").strip()])
        except OSError:
            continue
    return redactor


def _journal() -> str:
    if shutil.which("journalctl") is None:
        return "journalctl is not available on this host\n"
    try:
        result = subprocess.run(
            ["journalctl", "-u", "pbx-agent", "-n", "2000", "--no-pager", "-o", "short-iso"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    return result.stdout or result.stderr or "no log lines\n"


def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = {
        "pbx-agent": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_bundle(
    target: Path,
    config_path: Path,
    checks: Sequence[Check],
    daemon_views: dict[str, Any],
    known_secrets: Iterable[str] = (),
) -> list[str]:
    """Write the bundle; the names of its files."""
    redactor = redactor_for(config_path, known_secrets)
    try:
        config_text = config_path.read_text(errors="replace")  # a Latin-1 comment, say
    except OSError as exc:
        config_text = f"# cannot read {config_path}: {exc}\n"
    files: dict[str, str] = {
        "diag.json": json.dumps([c.to_json() for c in checks], indent=2),
        "agent.toml": config_text,
        "versions.json": json.dumps(_versions(), indent=2),
        "journal.txt": _journal(),
    }
    for name, value in daemon_views.items():
        files[f"daemon/{name}.json"] = json.dumps(redactor.clean(value), indent=2, default=str)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name, text in files.items():
            data = redactor.scrub(text).encode()
            info = tarfile.TarInfo(f"pbx-agent-diag/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    partial.chmod(0o600)
    partial.replace(target)
    return sorted(files)


__all__ = ["DAEMON_VIEWS", "MASK", "redactor_for", "write_bundle"]
