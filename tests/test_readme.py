"""The README's tour runs as written, so the README cannot drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.DOTALL)
EXPECTED_EXIT = re.compile(r"#\s*exit (\d+)\s*$")


def tour_blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A five-minute tour") :]
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(tour)]


def as_checked_script(block: str) -> str:
    """Each line runs; its exit code must be 0 or the `# exit N` it is annotated with."""
    lines = ["set -u"]
    for line in block.splitlines():
        if not line.strip():
            continue
        match = EXPECTED_EXIT.search(line)
        expected = int(match.group(1)) if match else 0
        quoted = line.replace("'", "'\\''")
        lines.append(
            f"{line}\nrc=$?; [ $rc -eq {expected} ] || {{ echo 'line failed ('$rc'): {quoted}' >&2; exit 1; }}"
        )
    return "\n".join(lines)


def test_readme_tour_runs(tmp_path: Path) -> None:
    blocks = tour_blocks()
    assert [kind for kind, _ in blocks].count("sh") >= 3
    env = {**os.environ, "MLWARDEN_CONFIG_HOME": str(tmp_path / "home")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = "\n".join(as_checked_script(code) for kind, code in blocks if kind == "sh")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "denied" in done.stdout or "denied" in done.stderr
    assert "OK: audit log" in done.stdout
    credentials = tomllib.loads((tmp_path / "home" / "credentials.toml").read_text())
    (entry,) = credentials["workspaces"].values()
    env["MLWARDEN_TOKEN"] = entry["token"]
    for kind, code in blocks:
        if kind == "python":
            subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, timeout=120)
