"""The set-up scripts: a folder named avflow/ in the current directory does not shadow the
install, and the install says what it does, once (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_folder_named_avflow_in_the_cwd_does_not_shadow_the_package(tmp_path, repo_dir):
    # As when running a script from the folder that holds the clone, itself named avflow/.
    (tmp_path / "avflow").symlink_to(repo_dir, target_is_directory=True)
    res = subprocess.run([sys.executable, "-c", "import avflow, avflow_media; print(avflow.__file__); "
                          "print(avflow.run.__name__)"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(repo_dir / "avflow" / "__init__.py"), "run"]


def test_setup_says_what_it_installs_and_is_silent_when_done(repo_dir):
    text = (repo_dir / "scripts" / "setup.sh").read_text()
    assert 'echo "installing into $VENV (once; a few minutes): torch==2.13.0' in text
    if not (repo_dir / ".venv" / ".avflow-installed").is_file() or sys.prefix != str(repo_dir / ".venv"):
        return  # not this checkout's venv: nothing to re-run cheaply
    res = subprocess.run(["bash", str(repo_dir / "scripts" / "setup.sh")], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
