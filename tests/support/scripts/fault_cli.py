"""The command line with one fault injected: the process kills itself
(SIGKILL) at a chosen point of a write. Not a test module; test_faults.py
runs it as `python tests/fault_cli.py <mpl_tf.main flags>` with FAULT set:

  checkpoint:N        after checkpoint N's data files are written, before
                      the checkpoint index names it
  checkpoint_torn:N   the same, with N's data files cut short first
  disk_full:N         no kill: just before checkpoint N is written, a file
                      `balloon` beside --output_dir fills its disk
  export_write        while the export is being written (its SavedModel
                      is, its .keras file is not)
  export_swap         between moving the old export aside and moving the
                      new one in
"""

import os
import signal
import sys

# The repository (mpl_tf) and tests/support (the fixtures) on the path.
_SUPPORT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.dirname(os.path.dirname(_SUPPORT)), _SUPPORT]

from mpl_tf import console  # noqa: E402


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _fill_disk():
    out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--output_dir=")]
    with open(os.path.join(os.path.dirname(out[-1]), "balloon"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


def _fault_in_checkpoint(number, kind):
    import glob

    import tensorflow as tf

    original = tf.train.CheckpointManager.save
    torn = kind == "checkpoint_torn"

    def save(self, checkpoint_number=None, check_interval=True, options=None):
        if checkpoint_number != number:
            return original(self, checkpoint_number, check_interval, options)
        if kind == "disk_full":
            _fill_disk()
            return original(self, checkpoint_number, check_interval, options)

        def written(path):  # runs before the manager records the checkpoint
            if torn:
                for data in glob.glob(path + ".data-*"):
                    with open(data, "r+b") as f:
                        f.truncate(os.path.getsize(data) // 2)
            _die()
        return original(self, checkpoint_number, check_interval,
                        tf.train.CheckpointOptions(
                            experimental_write_callbacks=[written]))
    tf.train.CheckpointManager.save = save


def _kill_in_export(point):
    from mpl_tf import export

    if point == "export_write":
        import keras

        def save(self, filepath, *args, **kwargs):  # after the SavedModel
            _die()
        keras.Model.save = save
    else:
        rename = os.rename

        def swap(src, dst):
            rename(src, dst)
            if dst.endswith(".old"):
                _die()
        export.os = type(os)("os_with_a_kill")
        export.os.__dict__.update(os.__dict__)
        export.os.rename = swap


def main():
    console.tensorflow_defaults()  # before the patches import TensorFlow
    fault = os.environ["FAULT"]
    if ":" in fault:
        kind, number = fault.split(":")
        _fault_in_checkpoint(int(number), kind)
    else:
        _kill_in_export(fault)
    from mpl_tf import main as cli
    sys.argv[0] = "mpl_tf"
    cli.run_cli()


if __name__ == "__main__":
    main()
