"""Datasets, splits, augmentation and the tf.data input.

What each module does:
- source.py: what a dataset hands the input (`Source`; its splits in
  memory, `Split`, or read from files while training, `StreamedSplit`).
- loader.py: the `Source` and augmentation the CLI's flags name (the
  CLI's entry point: `load_source(params)`), parsing names with names.py.
- Sources: digits.py, animal_shapes.py (bundled, split by arrays.py's
  `partitioned_source`), folder.py (image folders), tfds_source.py
  (CIFAR, SVHN, ImageNet, reading TFDS files with tfds_files.py),
  arrays.py's `arrays_source` (a user's own arrays); splits.py chooses
  class-balanced subsets.
- pipeline.py: any source into the train step's batches (`TrainInput`)
  and eval batches, under any tf.distribute strategy.
- views.py: the weak and strong views of a batch, built on augment.py
  (flip, crop, cutout), randaugment.py and crops.py (ImageNet's crops).
- teacher_labels.py: the stored teacher labels of Reduced MPL.
- fit_input.py: the datasets of `keras.Model.fit` (mpl_tf.MetaPseudoLabels):
  `train_dataset` (from arrays), `source_train_dataset` (from a `Source`),
  `eval_dataset`, `load_source` (a CLI dataset by name).
"""

_FIT_INPUT = ("train_dataset", "source_train_dataset", "eval_dataset",
              "load_source", "arrays_source", "augment_config")


def __getattr__(name):
    import importlib  # pylint: disable=import-outside-toplevel

    if name in _FIT_INPUT:
        return getattr(importlib.import_module("mpl_tf.data.fit_input"), name)
    if not name.startswith("_"):  # a module: mpl_tf.data.digits.load(...)
        try:
            return importlib.import_module(f"mpl_tf.data.{name}")
        except ModuleNotFoundError:
            pass
    raise AttributeError(f"module 'mpl_tf.data' has no attribute {name!r}")
