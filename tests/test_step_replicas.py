"""The paired feedback and the undo of a non-finite step on 2 mirrored CPU
replicas (tests/support/scripts/step_check.py, in one subprocess: logical devices must be
set before TensorFlow starts)."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", name="checked")
def _checked():
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "support", "scripts", "step_check.py")],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    return out


def test_paired_feedback_is_zero_on_every_replica(checked):
    assert set(checked["feedback"]) == {"taylor", "taylor_low_memory",
                                        "exact_soft"}
    for mode, per_step in checked["feedback"].items():
        for per_replica in per_step:
            assert per_replica == [0.0, 0.0], (mode, per_step)


def test_a_nan_batch_changes_no_variable_on_mirrored_replicas(checked):
    assert set(checked["skip"]) == {"supervised", "uda", "taylor",
                                    "taylor_low_memory", "exact_soft"}
    for mode, r in checked["skip"].items():
        assert r["skipped"] == [1.0, 1.0], (mode, r)
        assert r["changed"], (mode, "the step counter must advance")
        assert all(k.endswith("/iteration") for k in r["changed"]), (mode, r)
        assert r["finite"], mode
