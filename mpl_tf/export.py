"""Export the deployed network (the EMA student in MPL) for serving.

SavedModel signature `serving_default`:
  input  `images`: uint8 [batch, H, W, C] (raw pixels; preprocessing inside)
  output `probabilities`: float32 [batch, num_classes]
         `classes`: int32 [batch] (argmax)
Also writes `model.keras`, which `keras.saving.load_model` reads back
(custom objects are registered by importing mpl_tf).
"""

import os
import shutil

import keras
import tensorflow as tf

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"


def _serving_fn(network):
    def serve(images):
        logits = network(tf.cast(images, tf.float32), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        return {"probabilities": probabilities,
                "classes": tf.argmax(probabilities, -1, output_type=tf.int32)}
    return serve


def _replace_dir(tmp, final):
    """Move `tmp` to `final`; an existing `final` is removed only after."""
    old = final + ".old"
    if os.path.exists(final):
        if os.path.exists(old):
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(tmp, final)
    if os.path.exists(old):
        shutil.rmtree(old)


def export(network, export_dir):
    """Write SavedModel + .keras under export_dir; returns the SavedModel path.

    Everything is written to a temporary directory first, so a failure
    (or a kill) leaves any earlier export untouched (a kill between the
    two final renames leaves it as `<export_dir>.old`, which the next
    export cleans up).
    """
    size, channels = network.input_shape[1], network.input_shape[3]
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tmp = export_dir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(
        name="serving_default", fn=_serving_fn(network),
        input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8,
                                       name="images")])
    archive.write_out(os.path.join(tmp, SAVED_MODEL_DIR), verbose=False)
    network.save(os.path.join(tmp, KERAS_FILE))
    _replace_dir(tmp, export_dir)
    return os.path.join(export_dir, SAVED_MODEL_DIR)
