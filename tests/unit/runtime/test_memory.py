"""Process tuning for graph runs: glibc allocator settings, heap trimming, passive OpenMP waits."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from avflow.runtime.memory import HeapTrimmer, tune_allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning is Linux-only")


@glibc
def test_trimmer_trims_at_most_once_per_interval():
    assert tune_allocator()
    trimmer = HeapTrimmer(interval=0.2)
    assert trimmer.active
    assert not trimmer.maybe_trim()  # the first interval has not passed
    time.sleep(0.25)
    assert trimmer.maybe_trim() and not trimmer.maybe_trim()


@glibc
def test_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("AVFLOW_NO_MALLOC_TUNING", "1")
    assert not HeapTrimmer().active


def _child(code: str, **env: str) -> str:
    import os

    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=full).stdout.strip()


def test_openmp_waits_passively_unless_the_user_said_otherwise():
    code = ("import os; from avflow.runtime.memory import quiet_openmp; "
            "print(quiet_openmp(), os.environ['OMP_WAIT_POLICY'])")
    assert _child(code) == "True PASSIVE"
    assert _child(code, OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"
    late = "import torch; " + code.replace("os.environ['OMP_WAIT_POLICY']", "os.environ.get('OMP_WAIT_POLICY')")
    assert _child(late) == "False None"  # torch's OpenMP already started: too late to change
