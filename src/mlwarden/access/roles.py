"""Project roles and the permission matrix: data, rendered into docs/access.md by a test.

Least privilege: every action lists the project roles that may do it, and nothing else may. A workspace
admin creates projects and manages role bindings everywhere, but gains no other project right from being
an admin: to approve, they need the approver role like anyone else (and never for their own change).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from mlwarden.domain.actions import Action


class Role(StrEnum):
    VIEWER = "viewer"
    DATA_STEWARD = "data_steward"
    ML_ENGINEER = "ml_engineer"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


ALL_ROLES = frozenset(Role)
# Granting these changes who can approve or administer: it needs another admin's approval.
PRIVILEGED_ROLES = frozenset({Role.APPROVER, Role.ADMIN})

# Project-scoped actions -> the roles that may do them in the resource's project. Workspace admins may
# also do the ones in WORKSPACE_ADMIN_ACTIONS.
PROJECT_MATRIX: Mapping[Action, frozenset[Role]] = {
    Action.ROLE_GRANT: frozenset({Role.ADMIN}),
    Action.ROLE_REVOKE: frozenset({Role.ADMIN}),
    Action.ROLE_LIST: ALL_ROLES,
    Action.APPROVAL_LIST: ALL_ROLES,
    # Who may vote is narrowed further by the request itself: its required role, never its author.
    Action.APPROVAL_APPROVE: frozenset({Role.APPROVER, Role.ADMIN}),
    Action.APPROVAL_REJECT: frozenset({Role.APPROVER, Role.ADMIN}),
    Action.DATA_READ: ALL_ROLES,
    Action.DATA_ADD: frozenset({Role.DATA_STEWARD, Role.ML_ENGINEER, Role.ADMIN}),
    Action.DATA_REVERT: frozenset({Role.DATA_STEWARD, Role.ADMIN}),
    # Rows themselves: not for viewers, who see versions, digests and provenance only.
    Action.DATA_EXPORT: frozenset({Role.DATA_STEWARD, Role.ML_ENGINEER, Role.AUDITOR, Role.ADMIN}),
    Action.DATA_VERIFY: frozenset({Role.DATA_STEWARD, Role.ML_ENGINEER, Role.AUDITOR, Role.ADMIN}),
    Action.DATA_PROTECT: frozenset({Role.DATA_STEWARD, Role.ADMIN}),
    # Lifting protection re-opens a dataset to unreviewed changes: admins only, with a step-up.
    Action.DATA_UNPROTECT: frozenset({Role.ADMIN}),
    # The contract and the gate policy decide what gets in: the people who own the data.
    Action.DATA_POLICY: frozenset({Role.DATA_STEWARD, Role.ADMIN}),
    # What the defenses measure against: poison in a trusted version would hide its like (marking it
    # takes a step-up; withdrawing the mark does not).
    Action.DATA_TRUST: frozenset({Role.DATA_STEWARD, Role.ADMIN}),
    Action.RUN_READ: ALL_ROLES,
    # Training: the engineers' work. A run's later logs need the same role as its start.
    Action.RUN_START: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.RUN_LOG: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.RUN_INPUT: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.RUN_ARTIFACT: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.RUN_END: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.MODEL_READ: ALL_ROLES,
    Action.MODEL_REGISTER: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    # The model's bytes: not for viewers (a model can leak its training data).
    Action.MODEL_PULL: frozenset({Role.ML_ENGINEER, Role.APPROVER, Role.AUDITOR, Role.ADMIN}),
    Action.MODEL_EVALUATE: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    # Requesting a stage change; production also needs a step-up and the policy's approvers.
    Action.MODEL_PROMOTE: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    Action.MODEL_ALIAS: frozenset({Role.ML_ENGINEER, Role.ADMIN}),
    # What a model must pass to reach production: project and workspace admins, with a step-up.
    Action.MODEL_POLICY: frozenset({Role.ADMIN}),
}
WORKSPACE_ADMIN_ACTIONS = frozenset(
    {Action.ROLE_GRANT, Action.ROLE_REVOKE, Action.ROLE_LIST, Action.APPROVAL_LIST, Action.MODEL_POLICY}
)

# Sensitive actions: they need a TOTP step-up for this action and this resource within 5 minutes.
STEP_UP_ACTIONS = frozenset(
    {
        Action.ROLE_GRANT,
        Action.ROLE_REVOKE,
        Action.APPROVAL_APPROVE,
        Action.DATA_UNPROTECT,
        Action.SCAN_ALLOW,
        Action.MODEL_POLICY,  # a weaker promotion policy lets a model into production: a second factor
    }
)


# Step-ups that depend on the change (access/policy.py needs_step_up decides): shown in the matrix.
CONDITIONAL_STEP_UPS: Mapping[Action, str] = {
    Action.MODEL_PROMOTE: "TOTP to production",
    Action.DATA_TRUST: "TOTP to mark",
}


def matrix_markdown() -> str:
    """The matrix as a Markdown table (docs/access.md embeds it; a test keeps the two equal)."""
    roles = list(Role)
    lines = [
        "| action | " + " | ".join(roles) + " | workspace admin | step-up |",
        "| --- | " + " | ".join("---" for _ in roles) + " | --- | --- |",
    ]
    for action, allowed in PROJECT_MATRIX.items():
        cells = ["yes" if role in allowed else "" for role in roles]
        admin = "yes" if action in WORKSPACE_ADMIN_ACTIONS else ""
        step_up = "TOTP" if action in STEP_UP_ACTIONS else CONDITIONAL_STEP_UPS.get(action, "")
        lines.append(f"| `{action}` | " + " | ".join(cells) + f" | {admin} | {step_up} |")
    return "\n".join(lines) + "\n"
