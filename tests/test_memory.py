"""release_library_pages drops resident memory and nothing else."""

import json
import platform
import subprocess
import sys

import pytest

# A fresh process: what loading TensorFlow touched is only there once.
_CHILD = r"""
import json, numpy as np
def rss():  # read here, not through the function under test
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
import tensorflow as tf
from mpl_tf import memory
x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
w = np.random.default_rng(1).normal(size=(3, 3, 3, 4)).astype(np.float32)
before_value = tf.nn.conv2d(x, w, 1, "SAME").numpy()
before = rss()
released = memory.release_library_pages()
after = rss()
after_value = tf.nn.conv2d(x, w, 1, "SAME").numpy()
print(json.dumps({"before": before, "after": after, "released": released,
                  "same": bool((before_value == after_value).all())}))
"""


def _kernel_version():
    return tuple(int(p) for p in platform.release().split(".")[:2]
                 if p.isdigit())


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="MADV_PAGEOUT is Linux's")
def test_release_library_pages_drops_tensorflow_pages():
    if _kernel_version() < (5, 4):
        pytest.skip(f"kernel {platform.release()} has no MADV_PAGEOUT")
    out = subprocess.run([sys.executable, "-c", _CHILD], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    # ~0.3 GB on this project's machines; 100 MB is far from noise.
    assert result["before"] - result["after"] > 100 * 2**20, result
    assert result["released"] > 100 * 2**20, result
    # TensorFlow runs on, with the same numbers.
    assert result["same"], result


@pytest.mark.parametrize("argv,released", [([], True), (
    ["--norelease_library_pages"], False)])
def test_the_command_line_releases_pages_unless_told_not_to(
        monkeypatch, argv, released):
    from absl.testing import flagsaver  # pylint: disable=import-outside-toplevel

    from mpl_tf import main as main_lib, memory  # pylint: disable=import-outside-toplevel
    from mpl_tf.flags import FLAGS  # pylint: disable=import-outside-toplevel

    calls = []
    monkeypatch.setattr(memory, "release_library_pages",
                        lambda: calls.append("released"))
    monkeypatch.setattr(main_lib, "run", lambda params: calls.append("run"))
    with flagsaver.flagsaver():
        FLAGS(["mpl_tf", "--dataset_name=digits_50_mpl",
               "--output_dir=/tmp/unused"] + argv)
        main_lib.main(["mpl_tf"])
    # Before the run builds anything.
    assert calls == (["released", "run"] if released else ["run"])
