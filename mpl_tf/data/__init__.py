"""Datasets, splits, augmentation and the tf.data input.

- registry.py: --dataset_name -> a data source (`load_source`).
- source.py: what a source hands the input (`Source`; splits in memory,
  `Split`, or read from files while training, `StreamedSplit`); splits.py
  chooses class-balanced subsets.
- sources/: the bundled benchmarks (digits, Animal-Shape), image folders,
  TFDS datasets (CIFAR, SVHN, ImageNet), a user's own arrays.
- augment/: the weak and strong views of a batch.
- pipeline.py: any source into the train step's batches and eval batches,
  for the command line and for `keras.Model.fit`.
- teacher_labels.py, teacher_labeling.py: Reduced MPL's stored teacher
  distributions, read and written.
"""

import importlib

_PUBLIC = {
    "train_dataset": "mpl_tf.data.pipeline",
    "source_train_dataset": "mpl_tf.data.pipeline",
    "eval_dataset": "mpl_tf.data.pipeline",
    "load_source": "mpl_tf.data.registry",
    "arrays_source": "mpl_tf.data.sources.arrays",
    "augment_config": "mpl_tf.data.augment.ops",
}
# Modules by their former place: mpl_tf.data.digits.load(50, seed=0).
_MOVED = {"digits": "sources.digits", "animal_shapes": "sources.animal_shapes",
          "folder": "sources.folder", "fit_input": "pipeline"}


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _MOVED:
        return importlib.import_module(f"mpl_tf.data.{_MOVED[name]}")
    if not name.startswith("_"):  # a module: mpl_tf.data.pipeline
        try:
            return importlib.import_module(f"mpl_tf.data.{name}")
        except ModuleNotFoundError:
            pass
    raise AttributeError(f"module 'mpl_tf.data' has no attribute {name!r}")
