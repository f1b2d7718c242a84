"""What each subscription feature is, what the licence wants of it, and what is actually true
on the PBX: the rows `pbx-agent features` and `licence status` show.

`actual` never says "off" unless the enforcement proved every switch on the live PBX and left
nothing out; otherwise it says "not switched: REASON" (or "pending: REASON" while it cannot
tell, e.g. the PBX is unreachable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.licence.state import Evaluation
from agent.licence.status import AGENT_SWITCHED, FeatureStatus
from agent.licence.token import FEATURES

DESCRIPTIONS = {
    "softphone_app": "desktop and mobile softphone apps",
    "remote_portal": "remote portal access for users and administrators",
    "offsite_devices": "phones and devices outside the site's LAN",
    "integrations": "CRM and API integrations (manager accounts)",
    "add_extensions": "adding phone-type extensions",
    "software_updates": "manufacturer software updates",
    "config_archive": "off-site copy of configuration backups",
}


def actual_text(status: FeatureStatus | None, wanted_on: bool) -> str:
    if status is None:
        return "on" if wanted_on else "pending: not switched yet"
    if status.state == "not_switched":
        return f"not switched: {status.reason}"
    if status.state == "pending":
        return f"pending: {status.reason}"
    return status.state


def feature_rows(
    evaluation: Evaluation,
    driver_switches: Mapping[str, str],
    status: Mapping[str, FeatureStatus],
    journal: Sequence[Mapping[str, Any]],
    unavailable: str | None = None,
) -> list[dict[str, Any]]:
    """One row per feature: wanted on/off and why, actual, how it is (or would be) switched on
    this PBX, what it could not switch (by name), and the journal entries behind it.

    `driver_switches` maps each feature to the driver's own one-line description of how;
    `status` is the enforcement's last finding per feature; `unavailable` says why the driver,
    which could switch features, switches none here (e.g. no file access).
    """
    rows = []
    for name in FEATURES:
        wanted_on = evaluation.features[name]
        found = status.get(name)
        if name in AGENT_SWITCHED:
            how = AGENT_SWITCHED[name]
        else:
            how = (
                (found.how if found and found.how else "")
                or driver_switches.get(name)
                or unavailable
                or "the PBX driver cannot switch this feature"
            )
        actual = actual_text(found, wanted_on)
        state = found.state if found else ("on" if wanted_on else "pending")
        rows.append(
            {
                "feature": name,
                "description": DESCRIPTIONS[name],
                "wanted": "on" if wanted_on else "off",
                "actual": actual,
                "state": state,
                "enforced": state == ("on" if wanted_on else "off") or state == "n/a",
                "why": f"licence {evaluation.state}: {evaluation.reason}",
                "how": how,
                "note": found.reason if found else "",
                "unswitchable": found.to_json()["unswitchable"] if found else [],
                "journal": [e for e in journal if e["feature"] == name],
            }
        )
    return rows


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """For `status` and `licence status`: wanted vs actual per feature, and what is wrong."""
    return {
        "features": {r["feature"]: {"wanted": r["wanted"], "actual": r["actual"]} for r in rows},
        "not_switched": [
            r["feature"] for r in rows if not r["enforced"] and r["state"] != "pending"
        ],
        "pending": [r["feature"] for r in rows if r["state"] == "pending" and r["wanted"] == "off"],
    }
