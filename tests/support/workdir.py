"""Work directories for the integration tests: a fresh temp dir per use, and a private
$XDG_STATE_HOME per test process.

    Workdir(prefix)   a temp dir (Path in .path; `with Workdir() as d:` gives the Path),
                      removed at exit unless SMTPBLAST_KEEP_PEERS=1
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path


class Workdir:
    """A fresh temp dir (Path in .path), removed at exit unless SMTPBLAST_KEEP_PEERS=1."""

    def __init__(self, prefix="sb-integ-"):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.path, 0o755)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def cleanup(self):
        if os.environ.get("SMTPBLAST_KEEP_PEERS") == "1":
            print(f"kept {self.path}", file=sys.stderr)
            return
        shutil.rmtree(self.path, ignore_errors=True)


_state_home: str | None = None


def private_state_home() -> str:
    """Points $XDG_STATE_HOME at a temp dir of this process's own (once; removed at exit).

    --daily-limit also counts per sending account in a quota store under $XDG_STATE_HOME
    (README): every test process gets a fresh one, so tests neither share counts with each
    other's runs nor touch the user's own."""
    global _state_home
    if _state_home is None:
        _state_home = tempfile.mkdtemp(prefix="sb-integ-state-")
        os.environ["XDG_STATE_HOME"] = _state_home
        # Nor does a developer's own ~/.config/smtpblast/config.toml reach the tests' runs
        # (smtpblast reads $XDG_CONFIG_HOME/smtpblast/config.toml when present).
        config_home = os.path.join(_state_home, "config")
        os.makedirs(config_home, exist_ok=True)
        os.environ["XDG_CONFIG_HOME"] = config_home
        atexit.register(shutil.rmtree, _state_home, True)
    return _state_home
