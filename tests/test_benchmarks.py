"""The benchmarks' --quick settings run and print their tables (smoke test)."""

import os
import subprocess
import sys

import pytest

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


def test_step_time_quick_sweep_prints_rows_and_plot(tmp_path):
    import xml.etree.ElementTree as ET
    plot = tmp_path / "sweep.svg"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "step_time.py"),
         "--quick", "--sweep", f"--plot={plot}"], capture_output=True,
        text=True, timeout=600, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| implementation | B | median s/step | ms per teacher image |" in out
    assert "Port rows skipped: no --torch_python." in out
    rows = [line.split("|")[1:-1] for line in out.splitlines()
            if line.startswith("| mpl_tf taylor |")]
    assert [int(r[1]) for r in rows] == [2, 4]  # --quick sweeps B = 2, 4
    assert rows[-1][4].strip() != "-"  # --quick measures the last run's memory
    svg = ET.parse(plot).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    panels = {g.get("id"): g for g in svg.iter(ns + "g")}
    assert set(panels) == {"time", "memory"}
    points = {pid: [c.find(ns + "title").text.split(": ")
                    for c in g.iter(ns + "circle")] for pid, g in panels.items()}
    # One point per B, titled "<series> B=<B>: <value>" (4 significant
    # digits), the table's values (2 decimals).
    def plotted(panel):
        return [(name, float(y)) for name, y in points[panel]]

    def tabled(names, column):
        return [(name, pytest.approx(float(row[column]), abs=0.0051))
                for name, row in zip(names, rows[-len(names):])]

    assert plotted("time") == tabled(
        ["mpl_tf taylor B=2", "mpl_tf taylor B=4"], 3)
    assert plotted("memory") == tabled(["mpl_tf taylor B=4"], 4)


def test_mismatch_quick_runs_the_user_path_and_prints_its_tables(tmp_path):
    """benchmarks/mismatch.py --quick on a small fake Animal-Shape copy:
    folders written, the CLI run per method and share, both tables."""
    import gzip
    import pickle

    import numpy as np

    from mpl_tf.data.sources import animal_shapes

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 250)
    grey = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    for name, array in zip(animal_shapes._FILES, (grey, labels)):
        with gzip.open(tmp_path / name, "wb") as f:
            pickle.dump(array, f)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "mismatch.py"),
         "--quick", "--setting=classes", f"--animal_dir={tmp_path}",
         f"--out={out}"], capture_output=True, text=True, timeout=600,
        cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "mismatch.md").read_text(encoding="utf-8")
    assert "| method | m = 0 % | m = 50 % |" in text
    for method in ("supervised", "uda", "mpl"):
        assert f"\n| {method} | " in text
    shares = [line.split("|") for line in text.splitlines()
              if line.startswith(("| uda | 50 |", "| mpl | 50 |"))]
    assert len(shares) == 2
    assert all(0.3 < float(row[3]) < 0.7 for row in shares)  # ood/share
    # The pool's images of other classes sit in _other/, and only there.
    other = out / "data" / "seed0" / "m50" / "unlabeled" / "_other"
    assert len(list(other.iterdir())) == 20
    assert not (out / "data" / "seed0" / "m0" / "unlabeled" / "_other").exists()
