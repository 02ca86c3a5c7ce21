"""An ingestion never imports pandas: pyarrow would load it (~0.3 s of every `data add`) on the first
conversion of a Python value, so fingerprints, samples and drift tests build their arrays from buffers.
Nor polars (~0.15 s) unless contract checks run, nor scipy (~0.2-0.6 s)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


# the second batch is larger than the poisoning step's sample: sampling rows must not import pandas either
def test_an_ingestion_with_nulls_of_every_type_does_not_import_pandas(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from mlwarden.service.init import init_workspace
        import random
        def batch(name, seed, rows):  # two draws from one distribution: distinct rows, no drift
            rng = random.Random(seed)
            lines = ["id,amount,merchant,flag,day,label"]
            for i in range(seed * 10_000, seed * 10_000 + rows):
                value = rng.gauss(25, 8)
                amount = "" if i % 3 == 1 else f"{{value:.2f}}"
                merchant = "" if i % 3 == 2 else f"m{{rng.randrange(5)}}"
                flag = "" if i % 3 == 1 else rng.choice(["true", "false"])
                day = "" if i % 3 == 2 else f"2026-01-{{rng.randrange(28) + 1:02d}}"
                lines.append(f"{{i}},{{amount}},{{merchant}},{{flag}},{{day}},{{int(value > 25)}}")
            path = Path({str(tmp_path)!r}) / name
            path.write_text("\\n".join(lines) + "\\n")
            return path
        ws = init_workspace(Path({str(tmp_path)!r}) / "ws", admin_password="a-long-password-1").workspace
        ws.projects.create("p")
        first = ws.data.add("t", batch("a.csv", 1, 1_000), source="a", project="p", label_column="label")
        second = ws.data.add("t", batch("b.csv", 2, 2_100), source="b", project="p")
        assert (first.verdict, second.verdict) == ("accepted", "accepted"), (first.verdict, second.verdict)
        assert "pandas" not in sys.modules, "pandas was imported"
        assert "polars" not in sys.modules, "polars was imported (no contract checks ran)"
        assert "scipy" not in sys.modules, "scipy was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
