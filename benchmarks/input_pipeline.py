"""How many training images per second the input pipeline produces.

    python benchmarks/input_pipeline.py [--quick]

Counts every view the pipeline hands the trainer: B labeled (weak view) and,
for uda/mpl, mu*B unlabeled images in a weak and a strong view (RandAugment
+ cutout), at 32x32 with B=64, mu=7 (960 images per step), for both
RandAugment engines (--randaugment). The source is a
synthetic in-memory CIFAR-shaped dataset (random uint8 pixels, 50,000
images of which 4,000 labeled), so the numbers measure the pipeline, not
disk or decoding. Prints a markdown table.
"""

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH, MU, SIZE = 64, 7, 32


def synthetic_source(num_images, num_labeled):
    from mpl_tf.data.sources import tfds as tfds_source
    from mpl_tf.data.source import Source, Split

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, [num_images, SIZE, SIZE, 3], np.uint8)
    labels = (np.arange(num_images) % 10).astype(np.int32)
    return Source(
        name="synthetic-cifar", num_classes=10, image_size=SIZE, channels=3,
        mean=tfds_source.CIFAR_MEAN, std=tfds_source.CIFAR_STD,
        labeled=Split(images[:num_labeled], labels[:num_labeled]),
        unlabeled=Split(images), test=Split(images[:100], labels[:100]))


def measure(source, mode, engine, warmup, steps):
    """(steps/s, images/s) of TrainInput for `mode` and RandAugment engine."""
    from mpl_tf.data.augment.ops import AugmentConfig
    from mpl_tf.data.pipeline import TrainInput

    cfg = AugmentConfig(image_size=SIZE, pad=4, hflip=True, fill=128.0,
                        cutout=16, magnitude=16, randaugment=engine)
    iterator = iter(TrainInput(source, cfg, mode, BATCH, MU, seed=0)
                    .dataset())
    for _ in range(warmup):  # tracing, keras-cv set-up, prefetch fill
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(steps):
        batch = next(iterator)
        images += sum(int(v.shape[0]) for k, v in batch.items()
                      if k != "l_labels")
    seconds = time.perf_counter() - start
    return steps / seconds, images / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="~15 s: smaller source, 3 steps, no keras-cv row")
    args = parser.parse_args()
    num_images, warmup, steps = ((5_000, 1, 3) if args.quick
                                 else (50_000, 5, 60))
    source = synthetic_source(num_images, 4_000)
    print(f"input pipeline, {SIZE}x{SIZE}, B={BATCH}, mu={MU}, "
          f"{os.cpu_count()} CPU cores, {steps} steps after {warmup} warm-up")
    print()
    print("| mode | RandAugment | views per step | steps/s | images/s |")
    print("|---|---|---|---|---|")
    rows = [("supervised", "-", "B weak"),
            ("mpl", "stateless", "B weak + muB weak + muB strong"),
            ("mpl", "keras_cv", "B weak + muB weak + muB strong")]
    for mode, engine, views in rows[:2] if args.quick else rows:
        steps_per_s, images_per_s = measure(
            source, mode, "stateless" if engine == "-" else engine, warmup,
            steps)
        print(f"| {mode} | {engine} | {views} | {steps_per_s:.2f} | "
              f"{images_per_s:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
