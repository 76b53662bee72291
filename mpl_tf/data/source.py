"""What a data source hands the input pipeline: in-memory splits + metadata."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Split:
    """Images uint8 [N, H, W, C]; labels int32 [N] (None for unlabeled)."""

    images: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self):
        return len(self.images)


@dataclasses.dataclass
class Source:
    """Splits of one dataset and what a model and augmenter must know of it.

    `test` is for reporting only; `val` (if any) is for model selection.
    `mean` and `std` are per channel on the 0..255 scale.
    """

    name: str
    num_classes: int
    image_size: int
    channels: int
    mean: tuple
    std: tuple
    labeled: Split
    unlabeled: Split
    test: Split
    val: Split | None = None
    hflip: bool = True
    fill: float = 128.0
    cutout_fraction: float = 0.5  # cutout side / image side (16 of 32)
    split_indices: dict = dataclasses.field(default_factory=dict)
