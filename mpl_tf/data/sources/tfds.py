"""CIFAR-10/100, SVHN and ImageNet from prepared TFDS data in --data_dir.

Nothing is ever downloaded here: offline, a TFDS download hangs for minutes
before failing, so we look for the prepared files first and stop at once,
with the steps to provide them, if they are missing.

Splits (all by `splits.partition`, seeded by --seed): validation and
labeled images come from the TFDS train split, the test split is TFDS's
test split (ImageNet: validation). Indices in `split_indices` are
positions in TFDS's canonical order of that split (see tfds_files).

CIFAR and SVHN are read into memory and use the in-memory pipeline. SVHN's
`extra` images (--svhn_use_extra) and ImageNet are streamed from the files
(StreamedSplit); their labeled, validation and test splits too for ImageNet.
"""

import dataclasses
import functools

import numpy as np

from mpl_tf.data import splits
from mpl_tf.data.sources import tfds_crops as crops
from mpl_tf.data.sources import tfds_files
from mpl_tf.data.source import Source, Split, StreamedSplit, channel_stats
from mpl_tf.errors import ConfigError

CIFAR_MEAN = tuple(255.0 * m for m in (0.4914, 0.482158, 0.4465309))
CIFAR_STD = tuple(255.0 * s for s in (0.247032, 0.243485, 0.26159))
IMAGENET_MEAN = tuple(255.0 * m for m in (0.485, 0.456, 0.406))
IMAGENET_STD = tuple(255.0 * s for s in (0.229, 0.224, 0.225))
IMAGENET_DEFAULT_SIZE = 224


@dataclasses.dataclass(frozen=True)
class Spec:
    tfds_name: str
    test_split: str
    mean: tuple | None   # None: computed from the training images
    std: tuple | None
    hflip: bool = True


SPECS = {
    "cifar10": Spec("cifar10", "test", CIFAR_MEAN, CIFAR_STD),
    "cifar100": Spec("cifar100", "test", CIFAR_MEAN, CIFAR_STD),
    # House numbers: a mirrored digit is another digit (or none). The
    # reference has no SVHN: normalise with its own training images' stats.
    "svhn": Spec("svhn_cropped", "test", None, None, hflip=False),
    "imagenet": Spec("imagenet2012", "validation", IMAGENET_MEAN,
                     IMAGENET_STD),
}


def _how_to_prepare(tfds_name, root):
    prepare = (f"python -c \"import tensorflow_datasets as tfds; "
               f"tfds.builder('{tfds_name}', data_dir='{root}')"
               ".download_and_prepare()\"")
    if tfds_name == "imagenet2012":
        return ("download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
                "(register at https://image-net.org/download-images) into "
                f"{root}/downloads/manual/, then run {prepare} (no internet "
                "needed once the tars are there)")
    return (f"on a machine with internet run {prepare}, then copy the "
            f"{tfds_name}/ folder it makes into {root} on this machine")


def prepared_builder(tfds_name, data_dir, dataset_name, download=False):
    """The TFDS builder of prepared data. Missing data: with `download`
    (--data_download) TFDS downloads and prepares it, with its own progress
    output; otherwise ConfigError at once (offline machines would hang)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    root = str(builder.data_dir_root)
    if download:
        print(f"--data_download: TFDS downloads and prepares '{tfds_name}' "
              f"{builder.version} in {root}", flush=True)
        builder.download_and_prepare()
        return builder
    raise ConfigError(
        f"--dataset_name={dataset_name} needs the TFDS dataset "
        f"'{tfds_name}' {builder.version}, which is not in {builder.data_dir} "
        f"(--data_dir={data_dir or 'unset, so TFDS default'}); to provide it, "
        f"{_how_to_prepare(tfds_name, root)}, and pass --data_dir={root} "
        "(or add --data_download on a machine with internet)")


def _num_labeled(name, pool_size):
    if name.labeled_fraction is not None:
        return int(round(name.labeled_fraction * pool_size))
    return name.num_labeled


def _mask(size, indices):
    mask = np.zeros([size], bool)
    mask[indices] = True
    return mask


def _indices(name, spec, parts, labeled_in_unlabeled, extra=None):
    out = {k: v.tolist() for k, v in parts.items()}
    out["index_space"] = (f"{name} train split in TFDS order; test is the "
                          f"whole {spec.test_split} split")
    out["labeled_in_unlabeled"] = labeled_in_unlabeled
    if extra:
        out["unlabeled_extra"] = extra
    return out


def from_config(name, params):
    """The Source for a parsed dataset name (registry.DatasetName)."""
    spec = SPECS[name.source]
    builder = prepared_builder(spec.tfds_name, params.data_dir,
                               params.dataset_name,
                               download=params.data_download)
    if name.source == "imagenet":
        return _load_imagenet(name, params, spec, builder)
    return _load_small(name, params, spec, builder)


def _load_small(name, params, spec, builder):
    """CIFAR / SVHN: train and test in memory; SVHN extra streamed."""
    images, labels = tfds_files.read_arrays(builder, "train")
    parts = splits.partition(labels, _num_labeled(name, len(labels)),
                             params.num_val, params.seed,
                             params.labeled_in_unlabeled)
    test_images, test_labels = tfds_files.read_arrays(builder,
                                                       spec.test_split)
    mean, std = (spec.mean, spec.std) if spec.mean else channel_stats(images)
    size = images.shape[1]
    lab, unl, val = (parts[k] for k in ("labeled", "unlabeled", "val"))
    extra = None
    if params.svhn_use_extra:
        decode = functools.partial(crops.decode_resized, size=size)
        read, count = tfds_files.reader(
            builder, [("train", _mask(len(labels), unl)), ("extra", None)],
            lambda encoded, seed: decode(encoded), decode)
        unlabeled = StreamedSplit(read, count)
        extra = f"all {count - len(unl)} images of the extra split"
    else:
        unlabeled = Split(images[unl], labels[unl])
    return Source(
        name=builder.name, num_classes=_num_classes(builder),
        image_size=size, channels=images.shape[-1], mean=mean, std=std,
        labeled=Split(images[lab], labels[lab]), unlabeled=unlabeled,
        test=Split(test_images, test_labels),
        val=Split(images[val], labels[val]) if len(val) else None,
        hflip=spec.hflip, fill=128.0, cutout_fraction=0.5,
        split_indices=_indices(builder.name, spec, parts,
                               params.labeled_in_unlabeled, extra))


def _num_classes(builder):
    return int(builder.info.features["label"].num_classes)


def _load_imagenet(name, params, spec, builder):
    """ImageNet: every split streamed; labels read once to choose splits."""
    size = (params.image_size if params.is_set("image_size")
            else IMAGENET_DEFAULT_SIZE)
    labels = tfds_files.read_labels(builder, "train")
    parts = splits.partition(labels, _num_labeled(name, len(labels)),
                             params.num_val, params.seed,
                             params.labeled_in_unlabeled)
    train = functools.partial(crops.inception_crop, size=size)
    evaluate = functools.partial(crops.center_crop, size=size)

    def streamed(split, indices=None, labeled=True):
        keep = None if indices is None or len(indices) == len(labels) \
            else _mask(len(labels), indices)
        read, count = tfds_files.reader(
            builder, [(split, keep)],
            lambda encoded, seed: train(encoded, seed=seed), evaluate)
        known = labels[indices] if labeled and indices is not None else None
        return StreamedSplit(read, count, known)

    lab, unl, val = (parts[k] for k in ("labeled", "unlabeled", "val"))
    return Source(
        name=builder.name, num_classes=_num_classes(builder),
        image_size=size, channels=3, mean=spec.mean, std=spec.std,
        labeled=streamed("train", lab), unlabeled=streamed("train", unl, labeled=False),
        test=streamed(spec.test_split),
        val=streamed("train", val) if len(val) else None,
        hflip=True, fill=128.0, cutout_fraction=0.0, crop="inception",
        split_indices=_indices(builder.name, spec, parts,
                               params.labeled_in_unlabeled))
