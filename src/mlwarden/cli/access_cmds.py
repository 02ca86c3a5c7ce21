"""`mlwarden project`, `mlwarden role` and `mlwarden approvals`."""

from __future__ import annotations

from typing import Annotated

import typer

from mlwarden.cli.common import JsonOption, open_cli_workspace, output
from mlwarden.cli.render import Output
from mlwarden.service.approvals import ApprovalRequest

project_app = typer.Typer(help="Projects: the tenancy boundary.", no_args_is_help=True)
role_app = typer.Typer(help="Grant, revoke and list project roles.", no_args_is_help=True)
approvals_app = typer.Typer(help="Approval requests: list, show, approve, reject.", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="The project.")]
TotpOption = Annotated[str | None, typer.Option("--totp", help="A fresh TOTP code (step-up for this change).")]
UserArgument = Annotated[str, typer.Argument(help="Who.")]
RoleArgument = Annotated[str, typer.Argument(help="viewer, data_steward, ml_engineer, approver, auditor or admin.")]
CommentOption = Annotated[str | None, typer.Option("--comment", help="Why (kept with the vote).")]


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="The project's name.")],
    description: Annotated[str, typer.Option("--description", help="What it is for.")] = "",
    json_mode: JsonOption = False,
) -> None:
    """Create a project (workspace admins only)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        project = ws.projects.create(name, description)
    out.emit(project) if json_mode else out.line(f"Created project {project.name}")


@project_app.command("list")
def project_list(json_mode: JsonOption = False) -> None:
    """Projects you hold a role in (all of them for a workspace admin)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.projects.list()
    if json_mode:
        out.emit(found)
    else:
        out.table(["project", "description", "created"], [(p.name, p.description, p.created_at) for p in found])


@role_app.command("grant")
def role_grant(
    user: UserArgument,
    role: RoleArgument,
    project: ProjectOption,
    totp: TotpOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Grant a role (needs --totp). Approver and admin open an approval request for another admin."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        result = ws.roles.grant(user, role, project, totp=totp)
    if json_mode:
        out.emit(result)
    elif result.binding is not None:
        out.line(f"Granted {role} in {project} to {user}")
    else:
        out.line(f"{role} needs another admin's approval: request {result.approval_request} is pending")


@role_app.command("revoke")
def role_revoke(
    user: UserArgument,
    role: RoleArgument,
    project: ProjectOption,
    totp: TotpOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Revoke a role at once (needs --totp)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        binding = ws.roles.revoke(user, role, project, totp=totp)
    out.emit(binding) if json_mode else out.line(f"Revoked {role} in {project} from {user}")


@role_app.command("list")
def role_list(project: ProjectOption, json_mode: JsonOption = False) -> None:
    """The role bindings of a project."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        bindings = ws.roles.list(project)
    if json_mode:
        out.emit(bindings)
    else:
        out.table(["user", "role", "granted"], [(b.user, b.role, b.granted_at) for b in bindings])


@approvals_app.command("list")
def approvals_list(
    project: Annotated[str | None, typer.Option("--project", "-p", help="The project.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, approved, rejected, ...")] = None,
    json_mode: JsonOption = False,
) -> None:
    """Approval requests of a project."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.approvals.list(project, status)
    if json_mode:
        out.emit(found)
        return
    rows = [(r.id, r.kind, r.resource_id, r.author, f"{r.approvals}/{r.required_count}", r.status) for r in found]
    out.table(["id", "kind", "resource", "author", "approvals", "status"], rows)


@approvals_app.command("show")
def approvals_show(
    request_id: Annotated[str, typer.Argument(help="The request id.")], json_mode: JsonOption = False
) -> None:
    """One request with its votes and the digest it binds to."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        request = ws.approvals.show(request_id)
    _show(out, request, json_mode)


def _show(out: Output, request: ApprovalRequest, json_mode: bool) -> None:
    if json_mode:
        out.emit(request)
        return
    out.line(f"{request.id}: {request.kind} of {request.resource_type} {request.resource_id} in {request.project}")
    out.line(
        f"status {request.status}; {request.approvals} of {request.required_count} approvals by "
        f"{request.required_role}; author {request.author}; expires {request.expires_at}"
    )
    out.line(f"binds to {request.digest}")
    out.table(
        ["approver", "decision", "at", "comment"], [(v.approver, v.decision, v.at, v.comment) for v in request.votes]
    )


@approvals_app.command("approve")
def approvals_approve(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    totp: TotpOption = None,
    comment: CommentOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Approve (needs --totp; never your own request)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        request = ws.approvals.approve(request_id, totp=totp, comment=comment)
    _show(out, request, json_mode)


@approvals_app.command("reject")
def approvals_reject(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    comment: CommentOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Reject a request (closes it at once; never your own)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        request = ws.approvals.reject(request_id, comment=comment)
    _show(out, request, json_mode)
