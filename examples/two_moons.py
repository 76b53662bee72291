"""Two moons: supervised training, pseudo labels, UDA and Meta Pseudo Labels
from 6 labeled points, with mpl_tf's own train steps and a tiny MLP.

The MPL paper (Pham et al., CVPR 2021) illustrates MPL on a two-moons toy
where supervised training and pseudo labels draw the wrong boundary and
MPL the right one. This script runs each method on the same data for
`--seeds` seeds, prints test accuracy (mean ± std and per seed) on 10,000
held-out points, and draws the decision boundaries of one seed.

Settings (ours: the paper's exact setting was not at hand):
- data: sklearn `make_moons(2000, noise=0.1)`; 3 labeled points per class
  drawn at random per seed, the other 1,994 unlabeled; test: 10,000 more.
- views: labeled points and the weak view get Gaussian jitter of std 0.02,
  the strong view std 0.1.
- networks: MLP 2-32-32-2 (ReLU), teacher and student alike.
- every step: all 6 labeled points and 64 unlabeled ones; SGD, Nesterov
  momentum 0.9, learning rate 0.1, weight decay 5e-4, 3,000 steps.
- UDA: weight 4 (ramped up over 500 steps), threshold 0.6, temperature 0.75.
- methods: `mpl_tf.Supervised`; `mpl_tf.UDA`; `mpl_tf.MetaPseudoLabels`
  with and without the UDA term; "pseudo labels" is the MPL step with the
  feedback off (`mpl_baseline_decay=0` makes h - baseline = 0): a student
  on the hard labels of a teacher trained on the 6 points alone (or, with
  UDA, on the 6 points and the consistency loss). The MPL and pseudo-label
  rows report the student, which never sees a labeled point's label.

    python examples/two_moons.py --seeds 10 --png docs/two_moons.png
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
import mpl_tf  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

NUM_POINTS = 2000
NUM_TEST = 10000
NOISE = 0.1
LABELED_PER_CLASS = 3
UNLABELED_BATCH = 64
WEAK_JITTER = 0.02
STRONG_JITTER = 0.1
LEARNING_RATE = 0.1
WEIGHT_DECAY = 5e-4
UDA_WEIGHT = 4.0
UDA_RAMP_STEPS = 500
STEPS = 3000

# Drawn in this order: without UDA on the first row, with it on the second.
METHODS = ("supervised", "pseudo_labels", "mpl",
           "uda", "pseudo_labels_uda", "mpl_uda")
TITLES = {"supervised": "Supervised", "pseudo_labels": "Pseudo Labels",
          "mpl": "MPL", "uda": "UDA",
          "pseudo_labels_uda": "Pseudo Labels, UDA teacher",
          "mpl_uda": "MPL + UDA"}
DESCRIPTIONS = {
    "supervised": "supervised (the 6 labeled points)",
    "pseudo_labels": "pseudo labels: MPL step, feedback off, no UDA",
    "mpl": "MPL without UDA: teacher on labeled CE + feedback",
    "uda": "UDA",
    "pseudo_labels_uda": "pseudo labels from a UDA teacher: MPL + UDA, "
                         "feedback off",
    "mpl_uda": "MPL + UDA (the reference recipe)",
}
FEEDBACK_OFF = {"mpl_baseline_decay": 0.0}


class Moons:
    """A seed's labeled, unlabeled and test points."""

    def __init__(self, seed):
        points, classes = make_moons(NUM_POINTS, noise=NOISE,
                                     random_state=seed)
        rng = np.random.default_rng(seed)
        labeled = np.concatenate([
            rng.choice(np.flatnonzero(classes == c), LABELED_PER_CLASS,
                       replace=False) for c in (0, 1)])
        unlabeled = np.setdiff1d(np.arange(NUM_POINTS), labeled)
        self.labeled_points = points[labeled].astype("float32")
        self.labels = classes[labeled].astype("int32")
        self.unlabeled_points = points[unlabeled].astype("float32")
        self.unlabeled_classes = classes[unlabeled].astype("int32")
        test_points, test_classes = make_moons(NUM_TEST, noise=NOISE,
                                               random_state=10**6 + seed)
        self.test_points = test_points.astype("float32")
        self.test_classes = test_classes.astype("int32")


def train_batches(moons, seed):
    """The train step's dict batches: step t's are a function of (seed, t).
    `u_labels` feed the logged pseudo-label accuracy only."""
    labeled = tf.constant(moons.labeled_points)
    labels = tf.constant(moons.labels)
    unlabeled = tf.constant(moons.unlabeled_points)
    unlabeled_classes = tf.constant(moons.unlabeled_classes)

    def batch(step):
        def jitter(shape, view, std):
            view_seed = tf.stack([tf.cast(seed, tf.int64), step * 3 + view])
            return std * tf.random.stateless_normal(shape, view_seed)

        index = tf.random.stateless_uniform(
            [UNLABELED_BATCH], tf.stack([tf.cast(seed, tf.int64), -step - 1]),
            0, tf.shape(unlabeled)[0], tf.int32)
        points = tf.gather(unlabeled, index)
        return {
            "l_images": labeled + jitter(tf.shape(labeled), 0, WEAK_JITTER),
            "l_labels": labels,
            "u_weak": points + jitter(tf.shape(points), 1, WEAK_JITTER),
            "u_strong": points + jitter(tf.shape(points), 2, STRONG_JITTER),
            "u_labels": tf.gather(unlabeled_classes, index),
        }

    return tf.data.Dataset.range(2**62).map(batch).prefetch(2)


def mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,)),
                             keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(2)])


def sgd():
    return keras.optimizers.SGD(LEARNING_RATE, momentum=0.9, nesterov=True)


def build(method, seed):
    """A compiled mpl_tf Keras model; the same seed gives the supervised
    network, the UDA network and the MPL teacher the same initial weights."""
    uda = {"uda_weight": UDA_WEIGHT, "uda_steps": UDA_RAMP_STEPS}
    if method == "supervised":
        model = mpl_tf.Supervised(mlp(seed), weight_decay=WEIGHT_DECAY)
        model.compile(sgd(), steps_per_execution=100)
        return model
    if method == "uda":
        model = mpl_tf.UDA(mlp(seed), weight_decay=WEIGHT_DECAY, **uda)
        model.compile(sgd(), steps_per_execution=100)
        return model
    no_uda = {"uda_weight": 0.0}
    step_args = {"pseudo_labels": {**no_uda, **FEEDBACK_OFF},
                 "mpl": no_uda,
                 "pseudo_labels_uda": {**uda, **FEEDBACK_OFF},
                 "mpl_uda": uda}[method]
    model = mpl_tf.MetaPseudoLabels(mlp(seed), mlp(seed + 1000),
                                    weight_decay=WEIGHT_DECAY, **step_args)
    model.compile(sgd(), sgd(), steps_per_execution=100)
    return model


def train(method, moons, seed, steps=STEPS):
    model = build(method, seed)
    model.fit(train_batches(moons, seed), steps_per_epoch=steps, epochs=1,
              verbose=0)
    return model


def accuracy(model, moons):
    return model.evaluate(moons.test_points, moons.test_classes,
                          batch_size=NUM_TEST, verbose=0,
                          return_dict=True)["accuracy"]


def plot_boundaries(models, moons, path):
    """One panel per method: P(class 1) as colour, the 0.5 boundary, the
    unlabeled points faint, the labeled ones large."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = np.meshgrid(np.linspace(-1.6, 2.6, 300),
                         np.linspace(-1.1, 1.6, 200))
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype("float32")
    columns = min(3, len(models))
    rows = -(-len(models) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows),
                             squeeze=False)
    for ax, (method, (model, acc)) in zip(axes.ravel(), models.items()):
        prob = tf.nn.softmax(model(grid))[:, 1].numpy().reshape(xs.shape)
        ax.contourf(xs, ys, prob, levels=np.linspace(0, 1, 11),
                    cmap="RdBu_r", alpha=0.45)
        ax.contour(xs, ys, prob, levels=[0.5], colors="k", linewidths=1.2)
        ax.scatter(*moons.unlabeled_points.T, s=2, c="0.35", alpha=0.25,
                   linewidths=0)
        ax.scatter(*moons.labeled_points.T, s=110, c=moons.labels,
                   cmap="bwr", vmin=0, vmax=1, edgecolors="k",
                   linewidths=1.5, marker="*")
        ax.set_title(f"{TITLES[method]}: {100 * acc:.1f} %")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(models):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--png", default=os.path.join(REPO, "docs",
                                                      "two_moons.png"),
                        help="'' draws nothing (no matplotlib needed)")
    parser.add_argument("--plot_seed", type=int, default=None,
                        help="the seed drawn (default: the first)")
    args = parser.parse_args()
    methods = args.methods.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    plot_seed = args.first_seed if args.plot_seed is None else args.plot_seed

    start = time.time()
    results = {method: [] for method in methods}
    for seed in seeds:
        moons = Moons(seed)
        drawn = {}
        for method in methods:
            model = train(method, moons, seed, args.steps)
            results[method].append(accuracy(model, moons))
            drawn[method] = (model, results[method][-1])
        print(f"seed {seed}: " + ", ".join(
            f"{m} {100 * results[m][-1]:.1f}" for m in methods), flush=True)
        if seed == plot_seed and args.png:
            plot_boundaries(drawn, moons, args.png)
            print(f"decision boundaries of seed {seed}: {args.png}")

    print(f"\ntest accuracy (%), {NUM_TEST} points, seeds {seeds.start}-"
          f"{seeds.stop - 1}, {args.steps} steps\n")
    print("| method | mean ± std | per seed |\n|---|---|---|")
    for method in methods:
        acc = 100 * np.array(results[method])
        print(f"| {DESCRIPTIONS[method]} | {acc.mean():.1f} ± {acc.std():.1f}"
              f" | {', '.join(f'{a:.1f}' for a in acc)} |")
    print(f"\nwall time: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
