"""The workspace folder: finding it, and its ``.mlwarden/config.toml``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from mlwarden.errors import ConfigError, WorkspaceNotFound
from mlwarden.fsutil import atomic_write_text

META_DIR = ".mlwarden"
CONFIG_FILE = "config.toml"
ENV_WORKSPACE = "MLWARDEN_WORKSPACE"
ENV_DATABASE_URL = "MLWARDEN_DATABASE_URL"
ENV_PROJECT = "MLWARDEN_PROJECT"


@dataclass(frozen=True)
class WorkspaceConfig:
    """What ``config.toml`` holds. Paths are relative to the ``.mlwarden`` folder."""

    workspace_id: str
    origin: str
    key_name: str
    database_url: str = ""  # empty: SQLite at .mlwarden/metadata.db
    blob_dir: str = "blobs"
    key_file: str = "keys/checkpoint.pem"
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 3600.0
    witness_dir: str = ""  # when set, every checkpoint signed is also exported there once committed
    default_project: str = ""  # the project data commands use when none is named (MLWARDEN_PROJECT wins)

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be at least 1, not {self.checkpoint_every}")
        if not self.checkpoint_seconds > 0:
            raise ConfigError(f"checkpoint_seconds must be positive, not {self.checkpoint_seconds}")


@dataclass(frozen=True)
class WorkspacePaths:
    root: Path

    @property
    def meta(self) -> Path:
        return self.root / META_DIR

    @property
    def config(self) -> Path:
        return self.meta / CONFIG_FILE

    def resolve(self, relative: str) -> Path:
        return (self.meta / relative).resolve()

    def witness_dir(self, config: WorkspaceConfig) -> Path | None:
        """The configured witness folder (relative paths are relative to the workspace root)."""
        if not config.witness_dir:
            return None
        return (self.root / Path(config.witness_dir).expanduser()).resolve()

    def database_url(self, config: WorkspaceConfig) -> str:
        override = os.environ.get(ENV_DATABASE_URL)
        if override:
            return override
        return config.database_url or f"sqlite:///{self.meta / 'metadata.db'}"


def find_workspace(explicit: str | Path | None = None, start: Path | None = None) -> WorkspacePaths:
    """--workspace, then MLWARDEN_WORKSPACE, then the nearest folder upwards holding ``.mlwarden``."""
    chosen = explicit or os.environ.get(ENV_WORKSPACE)
    if chosen:
        root = Path(chosen).expanduser().resolve()
        if not (root / META_DIR / CONFIG_FILE).is_file():
            raise WorkspaceNotFound(f"{root} is not an mlwarden workspace (no {META_DIR}/{CONFIG_FILE})")
        return WorkspacePaths(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / META_DIR / CONFIG_FILE).is_file():
            return WorkspacePaths(folder)
    raise WorkspaceNotFound(f"no mlwarden workspace in {here} or any folder above it")


def load_config(paths: WorkspacePaths) -> WorkspaceConfig:
    try:
        raw = tomllib.loads(paths.config.read_text(encoding="utf-8"))
        section = raw["workspace"]
        return WorkspaceConfig(**section)
    except ConfigError as exc:
        raise ConfigError(f"{paths.config}: {exc}", hint="fix the file or restore it from a backup") from exc
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read {paths.config}: {exc}", hint="fix the file or restore it from a backup"
        ) from exc


def write_config(paths: WorkspacePaths, config: WorkspaceConfig) -> None:
    """Write config.toml, readable by its owner only: a database URL may carry a password."""
    atomic_write_text(paths.config, tomli_w.dumps({"workspace": asdict(config)}), mode=0o600)
