"""Without the serve extra, cbam-serve says in one line which extra to install (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO


def test_serve_without_the_extra_names_it(tmp_path: Path) -> None:
    # A 'pytriton' package without the tritonserver binary stands for an install without the extra.
    (tmp_path / "fake" / "pytriton").mkdir(parents=True)
    (tmp_path / "fake" / "pytriton" / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), str(REPO)]))
    done = subprocess.run([sys.executable, "-m", "cbam_deploy.cli.serve", str(tmp_path / "models" / "m")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    assert "serve extra" in lines[0] and "pip install -e '.[serve]'" in lines[0], lines
