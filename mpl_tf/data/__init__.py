"""Datasets, splits, augmentation and the tf.data input pipeline.

`loader.load_source(params)` is the entry point of the CLI. For
`keras.Model.fit` (mpl_tf.MetaPseudoLabels): `train_dataset` (from arrays),
`source_train_dataset` (from a `Source`), `eval_dataset`, `load_source`
(a CLI dataset by name); see fit_input.py.
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
