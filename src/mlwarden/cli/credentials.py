"""Where `mlwarden login` keeps API tokens: one file per OS user, mode 0600, keyed by workspace id."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomli_w

from mlwarden.fsutil import atomic_write_text

ENV_CONFIG_HOME = "MLWARDEN_CONFIG_HOME"


def credentials_path() -> Path:
    base = os.environ.get(ENV_CONFIG_HOME)
    if base:
        return Path(base) / "credentials.toml"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "mlwarden" / "credentials.toml"


def _load() -> dict[str, dict[str, str]]:
    path = credentials_path()
    if not path.is_file():
        return {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    workspaces = raw.get("workspaces", {})
    return {str(k): dict(v) for k, v in workspaces.items() if isinstance(v, dict)}


def stored_token(workspace_id: str) -> str | None:
    entry = _load().get(workspace_id)
    return entry.get("token") if entry else None


def store_token(workspace_id: str, user: str, token: str, root: Path) -> Path:
    entries = _load()
    entries[workspace_id] = {"user": user, "token": token, "path": str(root)}
    return _save(entries)


def forget_token(workspace_id: str) -> bool:
    entries = _load()
    if entries.pop(workspace_id, None) is None:
        return False
    _save(entries)
    return True


def _save(entries: dict[str, dict[str, str]]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_text(path, tomli_w.dumps({"workspaces": entries}), mode=0o600)
    return path
