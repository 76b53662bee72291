"""notebooks/colab_tpu.ipynb runs top to bottom on the CPU in its tiny setting.

The notebook is executed by nbclient in a fresh python3 kernel, as Jupyter
would run it from notebooks/: it must skip the Colab install, find no TPU,
train with --strategy=auto, list the TensorBoard event files instead of
starting a server, export with --task_mode=export and print predictions.
It runs twice: the digits job (default) and the CIFAR-10-4000 job, whose
TFDS data is `tfds.testing.mock_data` in the kernel and in the CLI
processes it starts (tests/support/tfds_fakes.py); nothing is downloaded.
"""

import importlib.util
import os
import pathlib
import re
import sys

import nbclient
import nbformat
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tfds_fakes import fake_prepared, mock_in_child_processes  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck"]


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source[:60]
            assert cell.execution_count is None, cell.source[:60]


def test_cost_estimate_follows_from_the_recipe():
    """The markdown's images and FLOPs per step are the CIFAR flagfile's
    batch through benchmarks/step_time.py's formula (F as it printed)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = next(c.source for c in nb.cells if c.cell_type == "markdown"
                and "ESTIMATE, not a measurement" in c.source)
    recipe = dict(line[2:].split("=", 1) for line in
                  (REPO / "flags" / "cifar10_4000_mpl.cfg").read_text()
                  .splitlines() if line.startswith("--") and "=" in line)
    b, mu = int(recipe["train_batch_size"]), int(recipe["uda_data"])
    steps = int(recipe["num_train_steps"])
    forward = 438.2e6  # step_time.py's "forward FLOPs per image" (wrn-28-2)
    passes = 3 * b * (1 + 2 * mu) + 3 * b * (1 + mu) + b
    flops = forward * passes
    assert f"= {b * (1 + 2 * mu):,}" in text and f"= {b * (1 + mu):,}" in text
    assert f"= {passes:,} F" in text
    assert f"**{flops / 1e12:.2f} TFLOP per step**" in text
    assert f"{steps * flops / 1e18:.2f} × 10¹⁸ FLOP" in text
    seconds = steps * flops / 40e12  # at the assumed 40 TFLOP/s
    assert "Assumed sustained throughput: 40 TFLOP/s" in text
    assert f"≈ {round(seconds, -2):,.0f} s ≈ {seconds / 3600:.1f} hours" in text


def _printed(nb):
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text.append(output["text"])
    return "".join(text)


def _execute(monkeypatch, out, **env):
    """Run the notebook with `env` on top of a clean environment; returns
    (executed notebook, everything it printed)."""
    # Nothing from a surrounding Colab, Jupyter or TPU session may leak in.
    for name in list(os.environ):
        if name.startswith(("COLAB_", "JPY_", "TPU_", "MPL_TF_")) or \
                name == "VSCODE_PID":
            monkeypatch.delenv(name)
    monkeypatch.setenv("MPL_TF_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("MPL_TF_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("MPL_TF_NOTEBOOK_TENSORBOARD", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    return nb, _printed(nb)


def _train_command(printed):
    commands = [line for line in printed.splitlines()
                if line.startswith("$ python -m mpl_tf.main")
                and "--task_mode=export" not in line]
    assert len(commands) == 1, commands
    return commands[0].split()


def _check_common(nb, printed, out):
    assert "Not on Colab: nothing to install" in printed
    assert "No TPU: training on the CPU with --strategy=auto" in printed
    assert "final (the exported" in printed
    assert re.search(r"TensorBoard event files \([1-9]\d*\)", printed)
    assert "events.out.tfevents" in printed
    for export in ("export", "export_from_checkpoint"):
        assert (out / export / "saved_model" / "saved_model.pb").is_file()
    assert "training's export and --task_mode=export agree: True" in printed
    # The library API cell: the README's Python example, in the kernel.
    assert re.search(r"test accuracy of the EMA student: 0\.\d{4}", printed)
    assert (out / "python_api" / "student.keras").is_file()
    # The picture grid is drawn where matplotlib is installed (Colab), and
    # said to be missing elsewhere.
    pngs = [o for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
    if importlib.util.find_spec("matplotlib"):
        assert len(pngs) == 1 and "picture grid: 10 test images" in printed
    else:
        assert not pngs and "matplotlib is not installed" in printed


@pytest.mark.timeout(900)
def test_notebook_runs_tiny_on_cpu(tmp_path, monkeypatch):
    out = tmp_path / "run"
    nb, printed = _execute(monkeypatch, out)
    _check_common(nb, printed, out)
    assert "dataset: digits_50_mpl" in printed
    command = _train_command(printed)
    assert f"--flagfile={REPO / 'flags' / 'digits_50_mpl.cfg'}" in command
    assert "--reset_output_dir" in command
    assert "--num_train_steps=6" in command
    assert not any(a.startswith("--data_") for a in command)
    predictions = re.findall(r"test image \d+: predicted (\d), true (\d) ",
                             printed)
    assert len(predictions) == 10, printed[-2000:]


@pytest.mark.timeout(600)
def test_notebook_runs_the_cifar_job_on_mocked_tfds(tmp_path, monkeypatch):
    # cifar10_4000_mpl labels 4,000 training images: the mocked splits
    # (train and test alike) have exactly that many.
    n = 4000
    data_dir = tmp_path / "tfds"
    fake_prepared(data_dir, "cifar10", ["train", "test"], n,
                  label_names=CIFAR10_CLASSES)
    site = mock_in_child_processes(tmp_path / "site", data_dir, n)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (site, os.environ.get("PYTHONPATH")) if p))
    out = tmp_path / "run"
    nb, printed = _execute(monkeypatch, out,
                           MPL_TF_NOTEBOOK_DATASET="cifar10_4000_mpl",
                           MPL_TF_NOTEBOOK_DATA_DIR=str(data_dir),
                           MPL_TF_NOTEBOOK_DATA_DOWNLOAD="1")
    _check_common(nb, printed, out)
    assert "dataset: cifar10_4000_mpl" in printed
    command = _train_command(printed)
    assert f"--flagfile={REPO / 'flags' / 'cifar10_4000_mpl.cfg'}" in command
    assert f"--data_dir={data_dir}" in command
    assert "--data_download" in command
    assert "--nouse_bfloat16" in command  # the recipe's bf16 is for the TPU
    # A resumable run; STEPS (4 here) scales the recipe's schedule lengths.
    assert "--reset_output_dir" not in command
    assert "--num_train_steps=4" in command
    assert "--mpl_student_lr_warmup_steps=1.66667%" in command
    assert "--uda_steps=1.66667%" in command
    # It trained and evaluated on the (mocked) CIFAR-10 test split.
    assert "(4000 images)" in printed
    predictions = re.findall(
        r"test image \d+: predicted (\d) \((\w+)\), true (\d) \((\w+)\) ",
        printed)
    assert len(predictions) == 10, printed[-2000:]
    for predicted, predicted_name, true, true_name in predictions:
        assert CIFAR10_CLASSES[int(predicted)] == predicted_name
        assert CIFAR10_CLASSES[int(true)] == true_name
