"""A separate OS process that sends one TOTP code, for tests/service/test_mfa.py's race.

``python _mfa_verifier.py --root R --token T --code C --at UNIX --ready F --start F``: open the workspace,
report ready, wait for the start file, call ``mfa.verify`` at the given (injected) time, and print one JSON
line: {"ok": true} or {"ok": false, "error": "<type>"}. It imports only ``mlwarden``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from mlwarden.errors import MlwardenError
from mlwarden.service.mfa import MfaService
from mlwarden.service.workspace import open_workspace

BARRIER_TIMEOUT = 60.0


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--root", "--token", "--code", "--ready", "--start"):
        parser.add_argument(name, required=True)
    parser.add_argument("--at", type=float, required=True)
    args = parser.parse_args()
    moment = datetime.fromtimestamp(args.at, UTC)
    with open_workspace(args.root, token=args.token, client="test-verifier") as ws:
        mfa = MfaService(ws._ctx, clock=lambda: moment)
        Path(args.ready).write_text("ready")
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while not Path(args.start).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("no start signal")
            time.sleep(0.001)
        try:
            mfa.verify(args.code)
            result: dict[str, object] = {"ok": True}
        except MlwardenError as error:
            result = {"ok": False, "error": type(error).__name__}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
