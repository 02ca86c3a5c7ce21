"""An ingestion never imports pandas: pyarrow would load it (~0.3 s of every `data add`) on the first
conversion of a Python value, so fingerprints, samples and drift tests build their arrays from buffers.
Nor polars (~0.15 s) unless contract checks run, nor scipy (~0.2-0.6 s)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_an_ingestion_with_nulls_of_every_type_does_not_import_pandas(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from mlwarden.service.init import init_workspace
        rows = "1,2.5,acme,true,2026-01-01,0\\n2,,globex,,2026-01-02,1\\n3,7.5,,false,,0\\n" * 30
        data = Path({str(tmp_path)!r}) / "x.csv"
        data.write_text("id,amount,merchant,flag,day,label\\n" + rows)
        ws = init_workspace(Path({str(tmp_path)!r}) / "ws", admin_password="a-long-password-1").workspace
        ws.projects.create("p")
        ws.data.add("t", data, source="a", project="p", label_column="label")
        ws.data.add("t", data, source="b", project="p")
        assert "pandas" not in sys.modules, "pandas was imported"
        assert "polars" not in sys.modules, "polars was imported (no contract checks ran)"
        assert "scipy" not in sys.modules, "scipy was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
