"""Which Asterisk config lines switch each subscription feature off.

ACL lines are appended after a section's own options, and Asterisk applies ACL rules in order
with the last match deciding, so `deny` everything followed by the allowed networks wins over
whatever the section allowed before; removing the lines restores the section exactly.
"""

from __future__ import annotations

from drivers.asterisk.conftext import UnsafeEdit
from drivers.models import AgentLine, FeaturePolicy

DENY_ALL = ("0.0.0.0/0", "::/0")
LOOPBACK = "127.0.0.0/8"

SWITCHES = {
    "softphone_app": "ACL on the endpoints used only by apps (deny all but loopback)",
    "offsite_devices": "ACL on phone endpoints: only licence.lan_subnets",
    "integrations": "manager accounts in licence.integration_accounts denied from everywhere",
    "add_extensions": "ACL on endpoints that appeared after the lapse began",
}


def _endpoint_acl(endpoint: str, feature: str, allowed: tuple[str, ...]) -> list[AgentLine]:
    lines = [
        AgentLine("pjsip.conf", endpoint, "endpoint", "deny", net, feature) for net in DENY_ALL
    ]
    lines += [
        AgentLine("pjsip.conf", endpoint, "endpoint", "permit", net, feature) for net in allowed
    ]
    return lines


def feature_lines(feature: str, policy: FeaturePolicy) -> tuple[AgentLine, ...]:
    """The lines that switch `feature` off; `UnsafeEdit` when it cannot be switched."""
    if feature == "softphone_app":
        lines = [
            ln for ep in policy.app_endpoints for ln in _endpoint_acl(ep, feature, (LOOPBACK,))
        ]
    elif feature == "add_extensions":
        lines = [
            ln for ep in policy.new_endpoints for ln in _endpoint_acl(ep, feature, (LOOPBACK,))
        ]
    elif feature == "offsite_devices":
        if not policy.lan_subnets:
            raise UnsafeEdit("licence.lan_subnets is empty: the site's networks are unknown")
        allowed = (*policy.lan_subnets, LOOPBACK)
        lines = [ln for ep in policy.phone_endpoints for ln in _endpoint_acl(ep, feature, allowed)]
    elif feature == "integrations":
        lines = [
            AgentLine("manager.conf", account, "", "deny", "0.0.0.0/0.0.0.0", feature)
            for account in policy.integration_accounts
        ]
    else:
        raise UnsafeEdit(f"Asterisk has no setting for {feature}")
    return tuple(lines)
