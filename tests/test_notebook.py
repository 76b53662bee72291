"""notebooks/colab_tpu.ipynb runs top to bottom on the CPU in its tiny setting.

The notebook is executed by nbclient in a fresh python3 kernel, as Jupyter
would run it from notebooks/: it must skip the Colab install, find no TPU,
train with --strategy=auto, list the TensorBoard event files instead of
starting a server, export with --task_mode=export and print predictions.
"""

import os
import pathlib
import re

import nbclient
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source[:60]
            assert cell.execution_count is None, cell.source[:60]


def _printed(nb):
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text.append(output["text"])
    return "".join(text)


@pytest.mark.timeout(900)
def test_notebook_runs_tiny_on_cpu(tmp_path, monkeypatch):
    # Nothing from a surrounding Colab, Jupyter or TPU session may leak in.
    for name in list(os.environ):
        if name.startswith(("COLAB_", "JPY_", "TPU_", "MPL_TF_")) or \
                name == "VSCODE_PID":
            monkeypatch.delenv(name)
    out = tmp_path / "run"
    monkeypatch.setenv("MPL_TF_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("MPL_TF_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("MPL_TF_NOTEBOOK_TENSORBOARD", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    printed = _printed(nb)

    assert "Not on Colab: nothing to install" in printed
    assert "No TPU: training on the CPU with --strategy=auto" in printed
    assert "--reset_output_dir" in printed
    assert "final: test top-1" in printed
    assert re.search(r"TensorBoard event files \([1-9]\d*\)", printed)
    assert "events.out.tfevents" in printed
    for export in ("export", "export_from_checkpoint"):
        assert (out / export / "saved_model" / "saved_model.pb").is_file()
    predictions = re.findall(r"test image \d+: predicted (\d), true (\d)",
                             printed)
    assert len(predictions) == 10, printed[-2000:]
    assert "training's export and --task_mode=export agree: True" in printed
