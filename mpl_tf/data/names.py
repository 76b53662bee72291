"""Parse `--dataset_name` into data source, labeled-split size and mode.

The reference encodes the training mode in the name's suffix: `_mpl` trains a
teacher and a student, `_uda` the teacher alone, and no suffix is supervised
training on the labeled split only.
"""

import dataclasses
import re

from mpl_tf.errors import ConfigError

MODES = ("supervised", "uda", "mpl")
_SUFFIX = {None: "supervised", "uda": "uda", "mpl": "mpl"}
_PATTERN = re.compile(
    r"^(?P<source>digits|cifar10|cifar100|svhn|imagenet)"
    r"_(?P<labels>\d+|10_percent)(?:_(?P<mode>mpl|uda))?$")

VALID_FORMS = ("digits_<N>[_uda|_mpl]", "cifar10_<N>[_uda|_mpl]",
               "cifar100_<N>[_uda|_mpl]", "svhn_<N>[_uda|_mpl]",
               "imagenet_10_percent[_uda|_mpl]")


@dataclasses.dataclass(frozen=True)
class DatasetName:
    source: str        # "digits", "cifar10", ...
    num_labeled: int | None  # None: a fraction, see `labeled_fraction`
    mode: str          # one of MODES
    labeled_fraction: float | None = None


def parse(name):
    """`digits_50_mpl` -> DatasetName("digits", 50, "mpl")."""
    match = _PATTERN.match(name or "")
    if not match:
        raise ConfigError(
            f"--dataset_name={name!r} is not a dataset name; valid forms: "
            f"{', '.join(VALID_FORMS)} (e.g. digits_50_mpl)")
    labels = match["labels"]
    mode = _SUFFIX[match["mode"]]
    if labels == "10_percent":
        if match["source"] != "imagenet":
            raise ConfigError(
                f"--dataset_name={name!r}: '10_percent' exists only for "
                "imagenet; give a number of labeled images instead")
        return DatasetName(match["source"], None, mode, labeled_fraction=0.1)
    num = int(labels)
    if num <= 0:
        raise ConfigError(
            f"--dataset_name={name!r}: the number of labeled images must be "
            "positive")
    return DatasetName(match["source"], num, mode)
