"""What a data source hands the input pipeline: splits + metadata.

A split is either in memory (`Split`, numpy arrays) or streamed from files
(`StreamedSplit`, for data too big for memory or for a graph constant).
"""

import dataclasses
from typing import Callable

import numpy as np


# An unlabeled image's known provenance when it is of none of the classes
# (e.g. a folder of junk beside a user's unlabeled images); -1 is unknown.
OUT_OF_CLASSES = -2


@dataclasses.dataclass
class Split:
    """Images uint8 [N, H, W, C]; labels int32 [N] (None if unknown).

    An unlabeled split may carry its true labels (-1 where unknown,
    OUT_OF_CLASSES for an image known to be of none of the classes); they
    are never trained on, only used for diagnostics (the pseudo labels'
    accuracy, how many out-of-class images pass the teacher's threshold)."""

    images: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self):
        return len(self.images)


@dataclasses.dataclass
class StreamedSplit:
    """A split read from files while training or evaluating.

    `read(input_context, training, seed, keyed=False)` returns an unbatched
    tf.data dataset of (image uint8 [S, S, C], label int32; -1 if unknown)
    holding this input pipeline's share of the split; keyed=True adds each
    image's key (int64, independent of read order). training=True:
    shuffled, repeated, training crop; False: each image once, eval crop.
    `labels` (if known) are the split's labels in index order.
    """

    read: Callable
    num_examples: int
    labels: np.ndarray | None = None

    def __len__(self):
        return self.num_examples


@dataclasses.dataclass
class Source:
    """Splits of one dataset and what a model and augmenter must know of it.

    `test` is for reporting only; `val` (if any) is for model selection.
    `mean` and `std` are per channel on the 0..255 scale. `crop` is how a
    training view is framed: "pad" (pad-and-crop, CIFAR-style) or
    "inception" (the reader already cut a random-area crop; ImageNet-style).
    """

    name: str
    num_classes: int
    image_size: int
    channels: int
    mean: tuple
    std: tuple
    labeled: Split | StreamedSplit
    unlabeled: Split | StreamedSplit
    test: Split | StreamedSplit
    val: Split | StreamedSplit | None = None
    hflip: bool = True
    fill: float = 128.0
    cutout_fraction: float = 0.5  # cutout side / image side (16 of 32)
    split_indices: dict = dataclasses.field(default_factory=dict)
    crop: str = "pad"

    @property
    def streamed(self):
        """True if a training split is read from files while training."""
        return any(isinstance(s, StreamedSplit)
                   for s in (self.labeled, self.unlabeled))


def pipeline_layout(input_context):
    """(input pipeline id, number of pipelines, replicas in sync) of a
    `tf.distribute.InputContext`; (0, 1, 1) for None (one device)."""
    if input_context is None:
        return 0, 1, 1
    return (input_context.input_pipeline_id,
            input_context.num_input_pipelines,
            input_context.num_replicas_in_sync)


def channel_stats(images, chunk=8192):
    """Per-channel mean and std (0..255 scale) of uint8 images.

    Summed in chunks so 73k SVHN images need no 1.8 GB float64 copy. The std
    is floored at 1 so a constant channel cannot divide by zero.
    """
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].astype(np.float64)
        total += part.sum(axis=(0, 1, 2))
        squares += (part ** 2).sum(axis=(0, 1, 2))
    count = images.size / images.shape[-1]
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(squares / count - mean ** 2, 0.0)), 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
