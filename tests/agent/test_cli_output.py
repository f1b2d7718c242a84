"""What the technician reads, rendered from fixed inputs: progress numbers (rate, time left),
plain progress lines at each phase and then periodically, sizes and times for people, a cut
user agent that says it was cut, the man page built from the commands, and the effective
configuration as valid TOML."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import compact_json, render
from agent.cli.manpage import render as render_manpage
from agent.cli.progress import PLAIN_EVERY, Display, estimate
from agent.cli.tree import cli
from agent.config.effective import as_toml, effective
from agent.config.load import load_config
from tests.agent.test_cli_conventions import commands


def snapshot(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "phase": "reading the PBX's files",
        "files": 0,
        "files_total": None,
        "bytes": 0,
        "bytes_total": None,
        "estimated": False,
        "phase_seconds": 0.0,
        "elapsed": 0.0,
    }
    return base | values


def test_rate_and_time_left_come_from_the_phase_so_far() -> None:
    fraction, rate, left = estimate(
        snapshot(bytes=250_000_000, bytes_total=1_000_000_000, phase_seconds=5.0)
    )
    assert fraction == pytest.approx(0.25)
    assert rate == pytest.approx(50_000_000)
    assert left == pytest.approx(15.0)


def test_the_slower_of_files_and_bytes_drives_the_estimate() -> None:
    # Every byte decrypted, half the files checked: half done, not all.
    fraction, _, left = estimate(
        snapshot(files=5, files_total=10, bytes=100, bytes_total=100, phase_seconds=4.0)
    )
    assert fraction == pytest.approx(0.5) and left == pytest.approx(4.0)


def test_an_estimated_total_that_is_passed_never_claims_done() -> None:
    fraction, _, left = estimate(
        snapshot(files=30, files_total=22, estimated=True, phase_seconds=10.0)
    )
    assert fraction == pytest.approx(0.99) and left is not None and left > 0


def test_unknown_totals_give_no_time_left() -> None:
    assert estimate(snapshot(files=3, bytes=10_000, phase_seconds=2.0))[2] is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_each_phase_then_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    display = Display("backup now", "plain", out, clock)
    display.on_progress(snapshot(phase="waiting for another backup"))
    for second in range(1, 26):
        clock.now = float(second)
        display.on_progress(
            snapshot(files=second, files_total=50, bytes=second * 1_000_000, phase_seconds=second)
        )
    lines = out.getvalue().splitlines()
    assert lines[0] == "backup now: waiting for another backup: 0 files, 0 B"
    assert lines[1].startswith("backup now: reading the PBX's files: 1 of 50 files, 1.0 MB")
    assert len(lines) == 2 + int((25 - 1) // PLAIN_EVERY), lines
    assert "11 of 50 files, 11.0 MB, 1.0 MB/s" in lines[2] and "left" in lines[2]


def test_sizes_and_times_for_people() -> None:
    assert render.size(512) == "512 B"
    assert render.size(42_800) == "42.8 kB"
    assert render.size(1_073_741_824) == "1.1 GB"
    now = datetime(2026, 11, 25, 2, 42, 5, tzinfo=UTC)
    shown = render.when("2026-11-25T02:30:05.123456+00:00", now=now)
    local = datetime(2026, 11, 25, 2, 30, 5, tzinfo=UTC).astimezone()
    assert shown == f"{local:%Y-%m-%d %H:%M:%S} (12 min ago)"
    assert render.when(now - timedelta(days=3), now=now).endswith("(3 days ago)")


def test_a_cut_user_agent_says_it_was_cut() -> None:
    agent = "Yealink SIP-T46U 108.86.0.20 build 2026-01-05 long tail"
    cut = render.clip(agent, 40)
    assert len(cut) == 40 and cut.endswith("…") and agent.startswith(cut[:-1])
    assert render.clip("Yealink SIP-T46S 66.86.0.15", 40) == "Yealink SIP-T46S 66.86.0.15"


def test_status_lines_for_backups_licence_and_open_problems() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    lines = render.problem_lines(
        [
            {
                "key": "pbx_login",
                "since": "2026-11-25T11:48:00+00:00",
                "severity": "critical",
                "summary": "PBX refuses the agent's login",
            }
        ],
        now=now,
    )
    assert lines[0] == "Health     1 open problem:"
    assert "CRITICAL pbx_login since" in lines[1] and "(12 min ago): PBX refuses" in lines[1]
    backup = {
        "enabled": True,
        "last": {
            "id": "B2",
            "status": "failed",
            "finished_at": "2026-11-25T11:00:00+00:00",
            "error": "disk full",
        },
        "last_good": {"id": "B1", "status": "ok", "finished_at": "2026-11-24T12:00:00+00:00"},
    }
    text = render.backup_line(backup, now=now)
    assert "last B2 FAILED" in text and "(1 h ago): disk full" in text
    assert text.endswith("last good " + render.when("2026-11-24T12:00:00+00:00", now=now))
    assert render.licence_line({"enabled": False}) == (
        "no licence server configured (nothing is switched)"
    )


def test_the_man_page_holds_every_command_and_formats_cleanly(tmp_path: Path) -> None:
    page = render_manpage(cli)
    for path in commands(cli):
        assert f'.SS "pbx\\-agent {" ".join(path).replace("-", chr(92) + "-")}' in page, path
    assert ".SH EXIT STATUS" in page and "NO_COLOR" in page
    built = subprocess.run(
        ["scripts/dev/build-manpage", str(tmp_path / "pbx-agent.1")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "pbx-agent.1").read_text() == page
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed: the page's formatting is not checked")
    formatted = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(tmp_path / "pbx-agent.1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert formatted.returncode == 0 and formatted.stderr == "", formatted.stderr
    assert "pbx-agent backup restore" in formatted.stdout


def test_the_effective_configuration_is_valid_toml(tmp_path: Path) -> None:
    secret = tmp_path / "ami-secret"
    secret.write_text("s3cret-value\n")
    secret.chmod(0o600)
    config = tmp_path / "agent.toml"
    config.write_text(
        'site_id = "site-one"\n[pbx.ami]\nusername = "agent"\nsecret_file = "ami-secret"\n'
        '[counting.endpoints.101]\nkind = "cordless"\n'
    )
    entries = effective(load_config(config), config)
    text = as_toml(entries, config)
    data = tomllib.loads(text)
    assert data["pbx"]["ami"]["port"] == 5038 and data["counting"]["endpoints"] == {
        "101": {"kind": "cordless"}
    }
    assert "s3cret-value" not in text


def test_json_for_a_program_is_one_line_keys_sorted_as_the_standard_encoder_has_it() -> None:
    """What `--json` prints when piped (and the daemon sends of a count): the standard
    library's compact encoding, byte for byte: names as UTF-8, dates through `str`."""
    value = {
        "seats": [{"name": "Zoë Ñúñez", "extension": "101", "kind": "desk_phone"}],
        "billable": 1,
        "ratio": 0.25,
        "stale": None,
        "generated_at": datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
        "by_number": {7: "seven"},
        "warnings": ("one", "two"),
    }
    line = compact_json.dumps(value)
    assert b"\n" not in line
    assert line.decode() == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
