"""Offline stand-ins for prepared TFDS data (shared by the data tests).

`fake_prepared(data_dir, name, splits, n)` writes the metadata files a
prepared dataset has (dataset_info.json, features.json) with `n` examples in
one shard per split, so the loader's "is it prepared?" check passes for
real; inside `tfds.testing.mock_data(num_examples=n, data_dir=data_dir)`
reading then yields n random examples per split. Nothing is downloaded.

`mock_in_child_processes(site_dir, data_dir, n)` extends that mock to other
Python processes (a notebook's kernel and the CLI it starts): it writes a
sitecustomize.py into site_dir, which goes first on their PYTHONPATH (it
hides any other sitecustomize module, which this machine has none of).
"""

import os

import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming


def fake_prepared(data_dir, name, splits, n, label_names=None):
    """`label_names`: the class names TFDS stores once it has prepared the
    data (label.labels.txt); without them the label's names are "0", "1"..."""
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
    if label_names:
        with open(os.path.join(builder.data_dir, "label.labels.txt"), "w",
                  encoding="utf-8") as f:
            f.write("\n".join(label_names) + "\n")
    return builder.data_dir


SITECUSTOMIZE = '''\
"""Written by tests/tfds_fakes.py: every Python process started with this
folder on PYTHONPATH reads TFDS through tfds.testing.mock_data."""
from mpl_tf import console

console.tensorflow_defaults()  # before TensorFlow loads, as the CLI
import tensorflow_datasets as tfds

# Kept referenced: a collected context manager would undo the mock.
MOCK = tfds.testing.mock_data(num_examples={n}, data_dir={data_dir!r})
MOCK.__enter__()
'''


def mock_in_child_processes(site_dir, data_dir, n):
    """Make Python processes that get `site_dir` on PYTHONPATH (a notebook's
    kernel, the CLI it starts) read TFDS as `tfds.testing.mock_data(
    num_examples=n, data_dir=data_dir)`: a sitecustomize.py there enters the
    mock at start-up. Returns `site_dir`, to prepend to PYTHONPATH."""
    os.makedirs(site_dir, exist_ok=True)
    with open(os.path.join(site_dir, "sitecustomize.py"), "w",
              encoding="utf-8") as f:
        f.write(SITECUSTOMIZE.format(n=int(n), data_dir=str(data_dir)))
    return str(site_dir)
