"""`--dataset_name` -> the data: one registry entry per data source.

A name is `<source>_<N>[_uda|_mpl]`: the source, how many labeled images,
and the training mode in the reference's suffix (`_mpl` trains a teacher
and a student, `_uda` the teacher alone, no suffix supervised training on
the labeled split only). A source may also take `10_percent` for N
(ImageNet) or no N at all (an image folder: every image is labeled).

Adding a dataset: a module with `from_config(name, cfg) -> Source` and one
`Dataset` entry below (`load` names the module lazily: each source's
imports are slow).
"""

import dataclasses
import importlib
import re

from mpl_tf.errors import ConfigError

MODES = ("supervised", "uda", "mpl")
_SUFFIX = {None: "supervised", "uda": "uda", "mpl": "mpl"}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One data source: the module whose `from_config(name, cfg)` builds
    it, the options only it reads, and how its N may be given."""

    module: str
    flags: tuple = ()
    labels_optional: bool = False    # no N: every training image labeled
    fraction: bool = False           # N may be `10_percent`


DATASETS = {
    "digits": Dataset("mpl_tf.data.sources.digits"),
    "animal_shapes": Dataset("mpl_tf.data.sources.animal_shapes"),
    "font_letters": Dataset("mpl_tf.data.sources.font_letters"),
    "cifar10": Dataset("mpl_tf.data.sources.tfds"),
    "cifar100": Dataset("mpl_tf.data.sources.tfds"),
    "svhn": Dataset("mpl_tf.data.sources.tfds", flags=("svhn_use_extra",)),
    "imagenet": Dataset("mpl_tf.data.sources.tfds", fraction=True),
    "image_folder": Dataset(
        "mpl_tf.data.sources.folder", labels_optional=True,
        flags=("train_dir", "unlabeled_dir", "eval_dir", "skip_bad_images")),
}


def valid_forms():
    forms = []
    for source, entry in DATASETS.items():
        labels = "[_<N>]" if entry.labels_optional else "_<N>"
        forms.append(f"{source}{labels}[_uda|_mpl]")
        if entry.fraction:
            forms.append(f"{source}_10_percent[_uda|_mpl]")
    return forms


@dataclasses.dataclass(frozen=True)
class DatasetName:
    source: str              # a key of DATASETS
    num_labeled: int | None  # None: a fraction (`labeled_fraction`) or all
    mode: str                # one of MODES
    labeled_fraction: float | None = None


_PATTERN = re.compile(
    rf"^(?P<source>{'|'.join(sorted(DATASETS, key=len, reverse=True))})"
    r"(?:_(?P<labels>\d+|10_percent))?(?:_(?P<mode>mpl|uda))?$")


def parse(name):
    """`digits_50_mpl` -> DatasetName("digits", 50, "mpl")."""
    match = _PATTERN.match(name or "")
    if not match:
        raise ConfigError(
            f"--dataset_name={name!r} is not a dataset name; valid forms: "
            f"{', '.join(valid_forms())} (e.g. digits_50_mpl)")
    entry = DATASETS[match["source"]]
    labels, mode = match["labels"], _SUFFIX[match["mode"]]
    if labels is None:
        if not entry.labels_optional:
            raise ConfigError(
                f"--dataset_name={name!r}: give the number of labeled images, "
                f"e.g. {match['source']}_50{'_' + match['mode'] if match['mode'] else ''}")
        return DatasetName(match["source"], None, mode)
    if labels == "10_percent":
        if not entry.fraction:
            raise ConfigError(
                f"--dataset_name={name!r}: '10_percent' exists only for "
                "imagenet; give a number of labeled images instead")
        return DatasetName(match["source"], None, mode, labeled_fraction=0.1)
    if int(labels) <= 0:
        raise ConfigError(
            f"--dataset_name={name!r}: the number of labeled images must be "
            "positive" + (" (or leave it out to label all of --train_dir)"
                          if entry.labels_optional else ""))
    return DatasetName(match["source"], int(labels), mode)


def _check_source_flags(cfg, source):
    """Options that only one source reads, given for another."""
    for other, entry in DATASETS.items():
        for flag in entry.flags:
            if other != source and flag not in DATASETS[source].flags and \
                    cfg.is_set(flag) and getattr(cfg, flag):
                owners = [s for s, e in DATASETS.items() if flag in e.flags]
                raise ConfigError(
                    f"--{flag} applies only to {' / '.join(owners)} "
                    f"datasets, not to --dataset_name={cfg.dataset_name}; "
                    "drop it")


def load_source(cfg, **options):
    """The `Source` --dataset_name names, checked against the options.

    `cfg`: a `config.RunConfig`, or a dataset name (e.g. "digits_50_mpl",
    "cifar10_4000_mpl") with other options as keyword arguments (seed,
    data_dir, image_size, num_val, ...)."""
    if isinstance(cfg, str):
        from mpl_tf import config
        cfg = config.defaults(dataset_name=cfg, **options)
    name = parse(cfg.dataset_name)
    _check_source_flags(cfg, name.source)
    module = importlib.import_module(DATASETS[name.source].module)
    source = module.from_config(name, cfg)
    _check_against_source(cfg, source)
    return source


def _check_against_source(cfg, source):
    if cfg.is_set("num_classes") and cfg.num_classes != source.num_classes:
        raise ConfigError(
            f"--num_classes={cfg.num_classes} conflicts with "
            f"{cfg.dataset_name}, which has {source.num_classes} classes; "
            "drop the flag or set it to that")
    if cfg.is_set("image_size") and cfg.image_size != source.image_size:
        raise ConfigError(
            f"--image_size={cfg.image_size} conflicts with "
            f"{cfg.dataset_name}, whose images are {source.image_size} "
            "pixels; drop the flag or set it to that")
