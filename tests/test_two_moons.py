"""examples/two_moons.py runs end to end: mpl_tf's train steps on 2-D
points.

No test asserts that MPL beats supervised training there: over 10 seeds it
does not (docs/results.md, "Two moons").
"""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "two_moons.py")
sys.path.insert(0, os.path.dirname(EXAMPLE))

import two_moons  # noqa: E402


def test_example_prints_its_table_and_draws_the_boundaries(
        tmp_path, monkeypatch, capsys):
    """The picture needs matplotlib (the `bench` extra); without it the
    example runs with --png='' and only its table is checked."""
    draws = importlib.util.find_spec("matplotlib") is not None
    png = tmp_path / "moons.png" if draws else ""
    monkeypatch.setattr(sys, "argv", [
        EXAMPLE, "--seeds=1", "--steps=100",
        "--methods=supervised,pseudo_labels,mpl_uda", f"--png={png}"])
    two_moons.main()
    out = capsys.readouterr().out
    for method in ("supervised", "pseudo_labels", "mpl_uda"):
        assert f"| {two_moons.DESCRIPTIONS[method]} | " in out
    if draws:
        assert png.stat().st_size > 10_000
