"""A tiny digits MPL run: trains, checkpoints, resumes, exports; the
SavedModel and the .keras file give the in-memory network's predictions."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mpl_tf import export, main


def test_train_resume_export(tiny_params):
    first = main.run(tiny_params())
    out = tiny_params().output_dir
    assert first["start_step"] == 0
    assert first["test"]["count"] == 600
    ckpts = tf.train.get_checkpoint_state(os.path.join(out, "checkpoints"))
    assert ckpts.model_checkpoint_path.endswith("ckpt-6")
    with open(os.path.join(out, "hparams.json"), encoding="utf-8") as f:
        hparams = json.load(f)
    assert hparams["flags"]["dataset_name"] == "digits_30_mpl"
    assert hparams["flags"]["uda_data"] == 2
    assert os.path.exists(os.path.join(out, "train"))

    # Same command, more steps: continues from step 6, not from scratch.
    second = main.run(tiny_params(num_train_steps=9))
    assert second["start_step"] == 6
    trainer = second["trainer"]
    assert int(trainer.global_step.numpy()) == 9

    images = np.random.default_rng(0).integers(
        0, 256, size=(7, 12, 12, 3), dtype=np.uint8)
    expected = tf.nn.softmax(
        trainer.eval_network(images.astype(np.float32), training=False)).numpy()
    served = tf.saved_model.load(second["export"])
    got = served.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(got["probabilities"].numpy(), expected,
                               atol=1e-5)
    np.testing.assert_array_equal(got["classes"].numpy(),
                                  expected.argmax(-1))
    reloaded = keras.saving.load_model(
        os.path.join(out, "export", export.KERAS_FILE))
    np.testing.assert_allclose(
        tf.nn.softmax(reloaded(images.astype(np.float32))).numpy(), expected,
        atol=1e-5)


def test_export_and_eval_modes_from_checkpoint(tiny_params):
    main.run(tiny_params(dataset_name="digits_30_uda"))
    out = tiny_params().output_dir
    exported = main.run(tiny_params(dataset_name="digits_30_uda",
                                    task_mode="export",
                                    export_dir=os.path.join(out, "again")))
    assert exported["checkpoint"].endswith("ckpt-6")
    assert os.path.isdir(exported["export"])
    result = main.run(tiny_params(dataset_name="digits_30_uda",
                                  task_mode="eval"))
    with open(os.path.join(out, "eval.json"), encoding="utf-8") as f:
        written = json.load(f)
    assert written["step"] == 6
    assert written["test"]["top1"] == result["test"]["top1"]
