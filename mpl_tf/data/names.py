"""Parse `--dataset_name` into data source, labeled-split size and mode.

The reference encodes the training mode in the name's suffix: `_mpl` trains a
teacher and a student, `_uda` the teacher alone, and no suffix is supervised
training on the labeled split only.

`image_folder[_<N>][_uda|_mpl]` reads --train_dir / --unlabeled_dir /
--eval_dir; without N every image of --train_dir is labeled.
"""

import dataclasses
import re

from mpl_tf.errors import ConfigError

MODES = ("supervised", "uda", "mpl")
_SUFFIX = {None: "supervised", "uda": "uda", "mpl": "mpl"}
_PATTERN = re.compile(
    r"^(?P<source>digits|animal_shapes|cifar10|cifar100|svhn|imagenet)"
    r"_(?P<labels>\d+|10_percent)(?:_(?P<mode>mpl|uda))?$")
_FOLDER_PATTERN = re.compile(
    r"^image_folder(?:_(?P<labels>\d+))?(?:_(?P<mode>mpl|uda))?$")

VALID_FORMS = ("digits_<N>[_uda|_mpl]", "animal_shapes_<N>[_uda|_mpl]",
               "cifar10_<N>[_uda|_mpl]",
               "cifar100_<N>[_uda|_mpl]", "svhn_<N>[_uda|_mpl]",
               "imagenet_10_percent[_uda|_mpl]", "imagenet_<N>[_uda|_mpl]",
               "image_folder[_<N>][_uda|_mpl]")


@dataclasses.dataclass(frozen=True)
class DatasetName:
    source: str        # "digits", "cifar10", ..., "image_folder"
    num_labeled: int | None  # None: a fraction (`labeled_fraction`) or all
    mode: str          # one of MODES
    labeled_fraction: float | None = None


def parse(name):
    """`digits_50_mpl` -> DatasetName("digits", 50, "mpl")."""
    folder = _FOLDER_PATTERN.match(name or "")
    if folder:
        num = int(folder["labels"]) if folder["labels"] else None
        if num == 0:
            raise ConfigError(
                f"--dataset_name={name!r}: the number of labeled images must "
                "be positive (or leave it out to label all of --train_dir)")
        return DatasetName("image_folder", num, _SUFFIX[folder["mode"]])
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
