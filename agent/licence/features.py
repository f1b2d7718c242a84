"""What each subscription feature is, what the licence wants of it, and who switches it.

Features switched in the agent itself take effect at once (`config_archive` stops the
off-site backup copy). Features that live on the PBX are switched by the driver; a feature
the driver cannot switch is reported as such, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.licence.state import Evaluation
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
AGENT_SWITCHED = {"config_archive": "off-site backup copies stop while off"}


def feature_rows(
    evaluation: Evaluation,
    driver_switches: Mapping[str, str],
    status: Mapping[str, Mapping[str, str]],
    journal: Sequence[Mapping[str, Any]],
    unavailable: str | None = None,
) -> list[dict[str, Any]]:
    """One row per feature: wanted on/off, why, how it is (or cannot be) switched, whether
    that is done, and the journal entries behind it.

    `driver_switches` maps each feature the driver can switch to a short note of how;
    `status` is the enforcement's last outcome per feature; `unavailable` says why the
    driver, which could switch features, switches none here (e.g. no file access).
    """
    rows = []
    for name in FEATURES:
        wanted = evaluation.features[name]
        outcome = status.get(name, {})
        if name in AGENT_SWITCHED:
            how, enforced = f"agent: {AGENT_SWITCHED[name]}", True
        elif name in driver_switches:
            how = f"driver: {driver_switches[name]}"
            enforced = wanted or outcome.get("state") == "off"
        else:
            how = unavailable or "the PBX driver cannot switch this feature"
            enforced = wanted
        rows.append(
            {
                "feature": name,
                "description": DESCRIPTIONS[name],
                "wanted": "on" if wanted else "off",
                "enforced": enforced,
                "why": f"licence {evaluation.state}: {evaluation.reason}",
                "how": how,
                "note": outcome.get("note", ""),
                "journal": [e for e in journal if e["feature"] == name],
            }
        )
    return rows
