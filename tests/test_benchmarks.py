"""The benchmarks' --quick settings run and print their tables (smoke test)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_step_time_quick_prints_table():
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "step_time.py"),
         "--quick", "--no-memory"], capture_output=True, text=True,
        timeout=600, cwd=REPO,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| step | median s |" in out
    for mode in ("supervised", "uda", "taylor", "exact"):
        assert f"| {mode} |" in out
    assert "GFLOP/s achieved" in out and "exact / taylor" in out


def test_loop_speed_quick_prints_table():
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "loop_speed.py"),
         "--quick"], capture_output=True, text=True, timeout=600, cwd=REPO,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| steps per call | steps/s (median round) |" in proc.stdout
    assert "| 1 | " in proc.stdout and "| 5 | " in proc.stdout
    assert "host's share of a step at 1 step per call (vs 5):" in proc.stdout
    assert "  CPU time: " in proc.stdout
