"""Checkpoints with tf.train.CheckpointManager, restoring with fallback.

TensorFlow writes a checkpoint's data files before it updates the
`checkpoint` index file, so an interrupted save is never listed as whole.
If the newest listed checkpoint cannot be read, we say so and try the one
before it.
"""

import os

from absl import logging
import tensorflow as tf

from mpl_tf.errors import ConfigError, StorageError

CKPT_SUBDIR = "checkpoints"


def make_manager(trainer_model, output_dir, max_to_keep):
    ckpt = tf.train.Checkpoint(**trainer_model.checkpoint_items())
    return tf.train.CheckpointManager(
        ckpt, os.path.join(output_dir, CKPT_SUBDIR), max_to_keep=max_to_keep,
        step_counter=trainer_model.global_step)


def _candidates(manager, load_checkpoint):
    if load_checkpoint:
        path = (tf.train.latest_checkpoint(load_checkpoint)
                if os.path.isdir(load_checkpoint) else load_checkpoint)
        if not path or not tf.io.gfile.glob(path + ".index"):
            raise ConfigError(f"--load_checkpoint={load_checkpoint!r}: no "
                              "checkpoint there; give a checkpoint prefix or "
                              "a directory holding one")
        return [path]
    return list(reversed(manager.checkpoints))


def restore(manager, load_checkpoint=None):
    """Restore the newest readable checkpoint. Returns its path or None."""
    for path in _candidates(manager, load_checkpoint):
        try:
            manager.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, IndexError, OSError,
                AssertionError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            if "shape" in str(err).lower() or isinstance(err, AssertionError):
                raise ConfigError(
                    f"checkpoint {path} does not match this model "
                    f"(--model_type/--dataset_name differ from the run that "
                    f"wrote it?): {msg}") from err
            if load_checkpoint:
                raise ConfigError(f"--load_checkpoint={load_checkpoint}: "
                                  f"{path} cannot be read ({msg})") from err
            logging.warning("cannot read checkpoint %s (%s); trying the "
                            "previous one", path, msg)
            continue
        logging.info("Restored %s", path)
        return path
    if manager.checkpoints:
        logging.warning("none of the %d checkpoints in %s can be read; "
                        "training starts again from step 0",
                        len(manager.checkpoints), manager.directory)
    return None


def save(manager, step):
    """`manager.save` at `step`; a failed write (a full disk, say) raises
    StorageError naming the newest checkpoint that is still whole."""
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err) else ""
        reason = reason.split("; ")[-1] or type(err).__name__
        previous = manager.latest_checkpoint
        kept = (f"the previous checkpoint {previous} is intact" if previous
                else "no earlier checkpoint exists")
        raise StorageError(
            f"step {step}: cannot write a checkpoint to {manager.directory} "
            f"({reason}); {kept}. Free space there and rerun the same "
            "command to resume") from err
