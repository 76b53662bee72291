"""The practitioner's supervised Keras CNN on the same labeled images: the
yardstick a semi-supervised recipe must beat (what someone who skips
unlabeled data would train in ten minutes).

    python benchmarks/keras_baseline.py --dataset=animal_shapes --labels=100
    python benchmarks/keras_baseline.py --dataset=digits --labels=50

Same labeled split (per --seeds) and the same fixed test split as
`--dataset_name=<dataset>_<labels>`; no unlabeled data, no EMA. The network
of every variant: Rescaling(1/255), Conv32-Conv32-MaxPool-Conv64-Conv64-
MaxPool (3x3, same padding, ReLU), Flatten, Dense128 ReLU, Dropout 0.5,
Dense(num_classes); Adam 1e-3; no batch norm, no weight decay. Variants
(--variants, all by default):

  practitioner   keras.layers.RandomTranslation(0.1, 0.1) on the input while
                 training; 500 optimizer steps of 32 images drawn from the
                 labeled images, reshuffled every pass
  no_augment     the same 500 x 32 steps without the translation
  plain          the earlier baseline: no augmentation, batch 16, --epochs
                 passes over the labeled images

Prints test top-1 per variant and seed, and their mean.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mpl_tf import config  # noqa: E402
from mpl_tf.data import registry  # noqa: E402

VARIANTS = ("practitioner", "no_augment", "plain")
STEPS, BATCH = 500, 32


def small_cnn(source, augment=False):
    inputs = keras.Input((source.image_size, source.image_size,
                          source.channels))
    x = inputs
    if augment:  # active only while training
        x = keras.layers.RandomTranslation(0.1, 0.1)(x)
    x = keras.layers.Rescaling(1 / 255.0)(x)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same",
                                activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same",
                                activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(source.num_classes)(x))


def load(dataset, labels, seed):
    p = config.defaults(dataset_name=f"{dataset}_{labels}",
                            output_dir="/tmp/unused", seed=seed)
    return registry.load_source(p)


def run(source, variant, seed, epochs):
    keras.utils.set_random_seed(seed)
    model = small_cnn(source, augment=variant == "practitioner")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    images = source.labeled.images.astype(np.float32)
    labels = source.labeled.labels
    if variant == "plain":
        model.fit(images, labels, batch_size=16, epochs=epochs, verbose=0)
    else:
        # 500 optimizer steps of 32: the labeled images in a new order every
        # pass, batches running on across passes (so every batch holds 32
        # even when there are fewer labeled images than that per pass).
        data = (tf.data.Dataset.from_tensor_slices((images, labels))
                .shuffle(len(images), seed=seed,
                         reshuffle_each_iteration=True)
                .repeat().batch(BATCH))
        model.fit(data, steps_per_epoch=STEPS, epochs=1, verbose=0)
    _, accuracy = model.evaluate(source.test.images.astype(np.float32),
                                 source.test.labels, batch_size=500,
                                 verbose=0)
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="animal_shapes")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=100,
                        help="passes over the labeled images (plain only)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    sources = {s: load(args.dataset, args.labels, s) for s in seeds}
    for variant in variants:
        results, seconds = [], []
        for seed in seeds:
            t0 = time.time()
            results.append(100 * run(sources[seed], variant, seed,
                                     args.epochs))
            seconds.append(time.time() - t0)
        what = (f"{args.epochs} epochs, batch 16" if variant == "plain"
                else f"{STEPS} steps, batch {BATCH}")
        print(f"{args.dataset}, {args.labels} labels, {variant} ({what}): "
              f"test top-1 {', '.join(f'{r:.2f}' for r in results)} (mean "
              f"{statistics.mean(results):.2f}; "
              f"{statistics.mean(seconds):.0f} s a run)", flush=True)


if __name__ == "__main__":
    main()
