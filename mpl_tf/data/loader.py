"""`load_source(params)`: the `Source` for --dataset_name, checked against
the flags; `augment_config(params, source)`: how it is augmented.
"""


from mpl_tf.data import names
from mpl_tf.data.augment import AugmentConfig
from mpl_tf.errors import ConfigError


def explicitly_set(params, name):
    return name in params.explicit


def _image_size(params, default):
    return params.image_size if explicitly_set(params, "image_size") else default


def load_source(params):
    """Load the data named by --dataset_name; check flags against it."""
    name = names.parse(params.dataset_name)
    if name.source == "digits":
        from mpl_tf.data import digits  # pylint: disable=import-outside-toplevel

        size = _image_size(params, digits.DEFAULT_IMAGE_SIZE)
        if size < 8:
            raise ConfigError(
                f"--image_size={size}: digits need at least 8 pixels")
        source = digits.load(name.num_labeled, params.seed, size)
    else:
        raise ConfigError(
            f"--dataset_name={params.dataset_name!r}: the {name.source} "
            "loader is not available in this version; use digits_<N>[_mpl]")
    check_against_source(params, source)
    return source


def check_against_source(params, source):
    if explicitly_set(params, "num_classes") and \
            params.num_classes != source.num_classes:
        raise ConfigError(
            f"--num_classes={params.num_classes} conflicts with "
            f"{params.dataset_name}, which has {source.num_classes} classes; "
            "drop the flag or set it to that")
    if explicitly_set(params, "image_size") and \
            params.image_size != source.image_size:
        raise ConfigError(
            f"--image_size={params.image_size} conflicts with "
            f"{params.dataset_name}, whose images are {source.image_size} "
            "pixels; drop the flag or set it to that")


def augment_config(params, source):
    size = source.image_size
    return AugmentConfig(image_size=size, pad=max(1, size // 8),
                         hflip=source.hflip, fill=source.fill,
                         cutout=int(round(size * source.cutout_fraction)),
                         magnitude=params.augment_magnitude)
