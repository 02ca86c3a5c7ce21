"""Names of models and their versions: ``NAME@3`` (a version), ``NAME@production`` (the version in a
stage), ``NAME@champion`` (an alias) and ``NAME`` alone (the newest version)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mlwarden.errors import UsageError


class Stage(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


# Where a version may go from each stage (a rollback returns an archived former production version to
# production, under its own rule).
NEXT_STAGES: dict[Stage, frozenset[Stage]] = {
    Stage.DEVELOPMENT: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.ARCHIVED}),
    Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset({Stage.STAGING}),
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_HINT = "write NAME, NAME@VERSION (a number), NAME@STAGE or NAME@ALIAS"


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid model name {str(name)[:60]!r}",
            hint="1 to 128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias in set(Stage):
        raise UsageError(
            f"invalid alias {str(alias)[:60]!r}",
            hint="lowercase letters, digits, '_' or '-', starting with a letter; not a stage name",
        )
    return alias


def parse_stage(text: str) -> Stage:
    try:
        return Stage(text)
    except ValueError:
        raise UsageError(f"unknown stage {text!r}", hint=f"one of: {', '.join(Stage)}") from None


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    stage: Stage | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, sep, rest = text.partition("@")
        check_model_name(name)
        if not sep:
            return cls(name)
        if rest.isdigit() and rest.isascii():
            if int(rest) < 1 or len(rest) > 9:
                raise UsageError(f"invalid version in {text!r}", hint="versions are numbered from 1")
            return cls(name, version=int(rest))
        if rest in set(Stage):
            return cls(name, stage=Stage(rest))
        if _ALIAS.fullmatch(rest):
            return cls(name, alias=rest)
        raise UsageError(f"invalid model reference {text[:80]!r}", hint=_HINT)

    def __str__(self) -> str:
        suffix = self.version or self.stage or self.alias
        return self.name if suffix is None else f"{self.name}@{suffix}"
