"""What is true of each feature on the PBX, and how that is told: the health findings
(`feature_switch:<feature>`, critical when a feature is not as the licence wants) and the
`licence` messages of enforcement actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.health.monitor import Finding
from agent.licence.state import Evaluation
from agent.licence.token import FEATURES
from drivers.models import SwitchOutcome, Unswitchable

AGENT_SWITCHED = {"config_archive": "agent: off-site backup copies stop while off"}
HEALTH_CHECK = "feature_switch"


@dataclass
class FeatureStatus:
    """What is true of one feature on the PBX now.

    `state`: `on`, `off` (every switch proven, nothing left out), `not_switched` (wanted off
    but not, or not restored: `reason` says why), `n/a` (the PBX has no such feature),
    `pending` (cannot tell yet: PBX unreachable, no count yet).
    """

    state: str
    how: str = ""
    reason: str = ""
    unswitchable: tuple[Unswitchable, ...] = ()
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "how": self.how,
            "reason": self.reason,
            "fix": self.fix,
            "unswitchable": [{"target": u.target, "reason": u.reason} for u in self.unswitchable],
        }


def health_findings(evaluation: Evaluation, statuses: Mapping[str, FeatureStatus]) -> list[Finding]:
    """One finding per feature whose state is known: healthy when it is as the licence wants
    (or the PBX has no such feature)."""
    findings = []
    for feature in FEATURES:
        status = statuses.get(feature)
        if status is None or status.state == "pending":
            continue
        wanted_on = evaluation.features[feature]
        healthy = status.state in ("on" if wanted_on else "off", "n/a")
        summary = (
            f"{feature} is {status.state.replace('_', ' ')} as the licence wants"
            if healthy
            else f"{feature} should be {'on' if wanted_on else 'off'} but is not: {status.reason}"
        )
        details = {
            "feature": feature,
            "reason": status.reason,
            "fix": status.fix or status.reason,
            "how": status.how,
        }
        findings.append(Finding(f"{HEALTH_CHECK}:{feature}", healthy, "critical", summary, details))
    return findings


def licence_message(
    state: str, action: str, feature: str, summary: str, outcomes: Sequence[SwitchOutcome]
) -> dict[str, Any]:
    """The body of a `licence` message about switches."""
    return {
        "state": state,
        "action": action,
        "summary": summary,
        "details": {
            "feature": feature,
            "switches": [
                {
                    "kind": o.switch.kind.value,
                    "target": o.switch.target,
                    "place": o.switch.place,
                    "state": o.state.value,
                    "detail": o.detail,
                }
                for o in outcomes[:200]
            ],
        },
    }


def targets(outcomes: Sequence[SwitchOutcome]) -> str:
    names = [o.switch.target for o in outcomes]
    shown = ", ".join(names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")
