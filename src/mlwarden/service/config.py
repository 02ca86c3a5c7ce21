"""The workspace folder: finding it, and its ``.mlwarden/config.toml``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from mlwarden.errors import ConfigError, WorkspaceNotFound

META_DIR = ".mlwarden"
CONFIG_FILE = "config.toml"
ENV_WORKSPACE = "MLWARDEN_WORKSPACE"
ENV_DATABASE_URL = "MLWARDEN_DATABASE_URL"


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
    witness_dir: str = ""  # when set, every new checkpoint is also exported there


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
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read {paths.config}: {exc}", hint="fix the file or restore it from a backup"
        ) from exc


def write_config(paths: WorkspacePaths, config: WorkspaceConfig) -> None:
    text = tomli_w.dumps({"workspace": asdict(config)})
    paths.config.write_text(text, encoding="utf-8")
