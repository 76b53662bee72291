"""Offline stand-ins for prepared TFDS data (shared by the data tests).

`fake_prepared(data_dir, name, splits, n)` writes the metadata files a
prepared dataset has (dataset_info.json, features.json) with `n` examples in
one shard per split, so the loader's "is it prepared?" check passes for
real; inside `tfds.testing.mock_data(num_examples=n, data_dir=data_dir)`
reading then yields n random examples per split. Nothing is downloaded.
"""

import os

import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming


def fake_prepared(data_dir, name, splits, n):
    builder = tfds.builder(name, data_dir=str(data_dir))
    infos = [tfds.core.SplitInfo(
        name=split, shard_lengths=[n], num_bytes=0,
        filename_template=naming.ShardedFileTemplate(
            data_dir=builder.data_dir, dataset_name=builder.name,
            split=split, filetype_suffix="tfrecord"))
             for split in splits]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    return builder.data_dir
