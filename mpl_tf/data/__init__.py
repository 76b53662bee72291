"""Datasets, splits, augmentation and the tf.data input pipeline.

`loader.load_source(params)` is the entry point.
"""
