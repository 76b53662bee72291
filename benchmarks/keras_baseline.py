"""A plain small Keras CNN trained with Adam on the same labeled images: the
yardstick a supervised recipe should be near (issue 15's target: within 2
points).

    python benchmarks/keras_baseline.py --dataset=animal_shapes --labels=100
    python benchmarks/keras_baseline.py --dataset=digits --labels=50

Same labeled split (per --seeds) and the same fixed test split as
`--dataset_name=<dataset>_<labels>`; no unlabeled data, no augmentation,
no EMA: Conv32-Conv32-pool-Conv64-Conv64-pool-Dense128-dropout-Dense, Adam
1e-3, batch 16, --epochs over the labeled images. Prints test top-1 per seed
and their mean.
"""

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
import keras  # noqa: E402
import numpy as np  # noqa: E402

from mpl_tf import config  # noqa: E402
from mpl_tf.data import registry  # noqa: E402


def small_cnn(source):
    inputs = keras.Input((source.image_size, source.image_size,
                          source.channels))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
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


def run(dataset, labels, seed, epochs):
    p = config.defaults(dataset_name=f"{dataset}_{labels}",
                            output_dir="/tmp/unused", seed=seed)
    source = registry.load_source(p)
    keras.utils.set_random_seed(seed)
    model = small_cnn(source)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(source.labeled.images.astype(np.float32), source.labeled.labels,
              batch_size=16, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(source.test.images.astype(np.float32),
                                 source.test.labels, verbose=0)
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="animal_shapes")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    results = [100 * run(args.dataset, args.labels, int(s), args.epochs)
               for s in args.seeds.split(",")]
    print(f"{args.dataset}, {args.labels} labels, plain Keras CNN + Adam, "
          f"{args.epochs} epochs: test top-1 "
          f"{', '.join(f'{r:.2f}' for r in results)} (mean "
          f"{statistics.mean(results):.2f})")


if __name__ == "__main__":
    main()
