"""Projects: the tenancy boundary. Every dataset, run, model and approval belongs to one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Resource
from mlwarden.errors import AlreadyExists, NotFound
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, mutation
from mlwarden.service.users import validate_user_name
from mlwarden.store.tables import projects, role_bindings

MAX_DESCRIPTION = 4096


@dataclass(frozen=True)
class Project:
    name: str
    description: str
    created_at: str


def require_project(conn: Connection, name: str) -> Project:
    row = conn.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no project named {name!r}", hint="see `mlwarden project list`")
    return Project(**row)


class ProjectService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @mutation
    def create(self, name: str, description: str = "") -> Project:
        validate_user_name(name, what="project name")
        description = description[:MAX_DESCRIPTION]

        def apply(conn: Connection) -> Applied[Project]:
            if conn.execute(select(projects.c.name).where(projects.c.name == name)).first() is not None:
                raise AlreadyExists(f"project {name!r} exists already")
            project = Project(name=name, description=description, created_at=format_ts(utcnow()))
            conn.execute(insert(projects).values(**project.__dict__))
            return Applied(project)

        return self._ctx.door.run(self._ctx.actor, Action.PROJECT_CREATE, Resource("project", name, name), apply)

    def list(self) -> list[Project]:
        """Every project for a workspace admin; otherwise the projects the caller holds a role in."""
        actor = self._ctx.actor

        def fetch(conn: Connection) -> list[Project]:
            query = select(projects).order_by(projects.c.name)
            if not actor.is_admin:
                mine = select(role_bindings.c.project).where(role_bindings.c.user_id == actor.user_id)
                query = query.where(projects.c.name.in_(mine))
            return [Project(**row) for row in conn.execute(query).mappings()]

        return self._ctx.door.read(actor, Action.PROJECT_LIST, Resource("project", "*"), fetch)
