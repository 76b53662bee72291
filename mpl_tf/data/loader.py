"""`load_source(params)`: the `Source` for --dataset_name, checked against
the flags; `augment_config(params, source)`: how it is augmented.
"""


from mpl_tf.data import names
from mpl_tf.data.augment import AugmentConfig
from mpl_tf.errors import ConfigError


def _image_size(params, default):
    return params.image_size if params.is_set("image_size") else default


# Flags that only mean something for some sources: giving them to another
# is a mistake worth stopping for.
_SOURCE_ONLY_FLAGS = {
    "svhn_use_extra": ("svhn",),
    "train_dir": ("image_folder",),
    "unlabeled_dir": ("image_folder",),
    "eval_dir": ("image_folder",),
    "skip_bad_images": ("image_folder",),
}


def _check_source_flags(params, source):
    for flag, sources in _SOURCE_ONLY_FLAGS.items():
        if params.is_set(flag) and getattr(params, flag) and \
                source not in sources:
            raise ConfigError(
                f"--{flag} applies only to {' / '.join(sources)} datasets, "
                f"not to --dataset_name={params.dataset_name}; drop it")


def load_source(params):
    """Load the data named by --dataset_name; check flags against it."""
    name = names.parse(params.dataset_name)
    _check_source_flags(params, name.source)
    # pylint: disable=import-outside-toplevel  (each source's imports are slow)
    if name.source == "digits":
        from mpl_tf.data import digits

        size = _image_size(params, digits.DEFAULT_IMAGE_SIZE)
        if size < 8:
            raise ConfigError(
                f"--image_size={size}: digits need at least 8 pixels")
        source = digits.load(name.num_labeled, params.seed, size,
                             num_val=params.num_val,
                             labeled_in_unlabeled=params.labeled_in_unlabeled)
    elif name.source == "animal_shapes":
        from mpl_tf.data import animal_shapes

        source = animal_shapes.load(
            name.num_labeled, params.seed, num_val=params.num_val,
            labeled_in_unlabeled=params.labeled_in_unlabeled)
    elif name.source == "image_folder":
        from mpl_tf.data import folder

        source = folder.load(name, params)
    else:
        from mpl_tf.data import tfds_source

        source = tfds_source.load(name, params)
    check_against_source(params, source)
    return source


def check_against_source(params, source):
    if params.is_set("num_classes") and \
            params.num_classes != source.num_classes:
        raise ConfigError(
            f"--num_classes={params.num_classes} conflicts with "
            f"{params.dataset_name}, which has {source.num_classes} classes; "
            "drop the flag or set it to that")
    if params.is_set("image_size") and \
            params.image_size != source.image_size:
        raise ConfigError(
            f"--image_size={params.image_size} conflicts with "
            f"{params.dataset_name}, whose images are {source.image_size} "
            "pixels; drop the flag or set it to that")


def augment_config(params, source):
    """The source's augmentation (`AugmentConfig.for_source`) with the
    flags' --hflip, --augment_magnitude and --randaugment."""
    return AugmentConfig.for_source(source, params.hflip,
                                    params.augment_magnitude,
                                    params.randaugment)
