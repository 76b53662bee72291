"""Images per second of Reduced MPL's labeling stage against Keras's own
`model.predict` on the same network, images and batch size.

    python benchmarks/label_throughput.py --model_type=cnn-small --image_size=16
    python benchmarks/label_throughput.py --model_type=wrn-28-10 --image_size=32 --images=512

Both are timed in one process, alternating, after one untimed pass each (the
traces); the median of --repeats passes is reported. The network has random
weights: the speed of a forward pass does not depend on them.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
import numpy as np  # noqa: E402

from mpl_tf.data import teacher_labeling as labeling  # noqa: E402
from mpl_tf.data import teacher_labels  # noqa: E402
from mpl_tf.data.source import Split  # noqa: E402
from mpl_tf.models import registry  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_type", default="cnn-small")
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    network = registry.build(registry.ModelConfig(
        args.model_type, 10, args.image_size), "teacher")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.image_size,
                                   args.image_size, 3), dtype=np.uint8)
    labeler = labeling.Labeler(network)
    scratch = tempfile.mkdtemp()

    def label_stage():  # what --task_mode=label does, shards and all
        writer = teacher_labels.Writer(os.path.join(scratch, "labels"))
        labeler.label_split(Split(images), args.batch_size,
                            lambda k, p: writer.add("unlabeled", k, p))
        writer.commit({})

    runs = {
        "mpl_tf label stage (writes its shards)": label_stage,
        "keras model.predict": lambda: network.predict(
            images.astype(np.float32), batch_size=args.batch_size, verbose=0),
    }
    times = {name: [] for name in runs}
    for i in range(args.repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if i:
                times[name].append(time.perf_counter() - start)
    print(f"\n{args.model_type}, {args.image_size}x{args.image_size}, "
          f"{args.images} images, batch {args.batch_size}\n")
    print("| labeling | images/s (median) |\n|---|---|")
    for name, t in times.items():
        print(f"| {name} | {args.images / statistics.median(t):.0f} |")


if __name__ == "__main__":
    main()
