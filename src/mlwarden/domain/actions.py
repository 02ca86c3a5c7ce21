"""Every action the door knows. Audit events carry these names; the permission table is keyed by them."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    WORKSPACE_INIT = "workspace.init"
    SCHEMA_UPGRADE = "schema.upgrade"
    USER_ADD = "user.add"
    USER_LIST = "user.list"
    USER_DISABLE = "user.disable"
    USER_SET_PASSWORD = "user.set_password"
    TOKEN_CREATE = "token.create"
    TOKEN_LIST = "token.list"
    TOKEN_REVOKE = "token.revoke"
    AUTH_LOGIN = "auth.login"
    AUTH_TOKEN = "auth.token"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_PUBLISH = "audit.publish"  # recorded only when publishing a signed checkpoint fails
    STORE_VERIFY = "store.verify"
    PROJECT_CREATE = "project.create"
    PROJECT_LIST = "project.list"
    ROLE_GRANT = "role.grant"
    ROLE_REVOKE = "role.revoke"
    ROLE_LIST = "role.list"
    APPROVAL_LIST = "approval.list"
    APPROVAL_APPROVE = "approval.approve"
    APPROVAL_REJECT = "approval.reject"
    MFA_ENROLL = "mfa.enroll"
    MFA_VERIFY = "mfa.verify"
    MFA_STEP_UP = "mfa.step_up"
    MFA_STATUS = "mfa.status"
    MFA_DISABLE = "mfa.disable"
    DATA_ADD = "data.add"
    DATA_REVERT = "data.revert"
    DATA_READ = "data.read"
    DATA_EXPORT = "data.export"
    DATA_VERIFY = "data.verify"
    DATA_PROTECT = "data.protect"
    DATA_UNPROTECT = "data.unprotect"
    DATA_POLICY = "data.policy"  # set a dataset's contract or gate policy
    DATA_TRUST = "data.trust"  # mark (or unmark) the version the poisoning defenses trust
    RUN_START = "run.start"
    RUN_LOG = "run.log"  # a batch of params, metrics and tags
    RUN_INPUT = "run.input"  # a dataset version the run trains on
    RUN_ARTIFACT = "run.artifact"  # a file the run produced
    RUN_END = "run.end"
    RUN_READ = "run.read"
    MODEL_REGISTER = "model.register"
    MODEL_READ = "model.read"  # versions, stages, lineage, signature status: never the bytes
    MODEL_PULL = "model.pull"  # the model's files (pull, load)
    MODEL_EVALUATE = "model.evaluate"  # measure a version on a dataset version, for promotion policies
    MODEL_PROMOTE = "model.promote"  # a stage change: promote, archive, roll back
    MODEL_ALIAS = "model.alias"
    MODEL_POLICY = "model.policy"  # set a project's promotion policy
    SCAN_ALLOW = "scan.allow"
    SCAN_DISALLOW = "scan.disallow"
    SCAN_ALLOWLIST = "scan.allowlist"
