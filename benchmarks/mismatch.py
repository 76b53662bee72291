"""Unlabeled images that are not from your classes: test accuracy of
supervised training, UDA and MPL as the unlabeled pool fills with images of
other classes or another domain.

    python benchmarks/mismatch.py --setting=classes --out=runs/mismatch_classes
    python benchmarks/mismatch.py --setting=foreign --out=runs/mismatch_foreign
    python benchmarks/mismatch.py --quick        # a tiny run (CI)

Settings (the class-mismatch protocol of Oliver et al. 2018, scaled down):
- `classes`: Animal-Shape. Labeled: the first 6 classes (bear, bird, cat,
  cow, dog, elephant), --labels_per_class of each; test: those 6 classes of
  the fixed test split. The unlabeled pool holds --pool images of the
  training pool (never the labeled ones), a share m of them from the other
  4 classes (giraffe, horse, sheep, zebra).
- `foreign`: digits, --labels_per_class of each of the 10; test: the fixed
  600-image split. A share m of the unlabeled pool are Animal-Shape
  silhouettes, resized to the digits' size: another domain altogether.
For each seed the labeled images and the pool are drawn once and shared by
every method and every m (paired); m grows by swapping in-class images of
the pool for out-of-class ones.

Each run is the user's path: the images are written as folders (--train_dir
with the labeled images, a subfolder per class; --unlabeled_dir with the
pool, its in-class images in class-named subfolders and the others in
`_other/`, which only the logs read; --eval_dir) and trained with the
command line and the image-folder recipe (flags/image_folder*.cfg), all
methods at the same --steps. Supervised training does not see the pool: it
runs once per seed, the flat reference line.

Writes <out>/mismatch.md (test top-1 mean ± std per method and m, and the
out-of-class shares the runs logged: of the unlabeled batch, of the images
over UDA's threshold, of what the student learns from, and the teacher's
confidence on in- and out-of-class images, averaged over the logged steps)
and <out>/mismatch.png (accuracy against m, one line per method).
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from accuracy import read_scores  # benchmarks/, the script's own directory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ANIMAL_IN = 6  # the first six Animal-Shape classes are labeled
# method -> (flagfile, dataset name, extra flags)
METHODS = {"supervised": ("image_folder.cfg", "image_folder", []),
           "uda": ("image_folder_uda.cfg", "image_folder_uda", []),
           "mpl": ("image_folder_mpl.cfg", "image_folder_mpl", []),
           # MPL whose student learns only the labels the teacher is sure of
           "mpl_confident": ("image_folder_mpl.cfg", "image_folder_mpl",
                             ["--mpl_label_threshold={label_threshold}"])}
OOD_NAMES = ("ood/share", "ood/share_confident", "ood/share_learned",
             "ood/teacher_confidence_in", "ood/teacher_confidence_out")


def _arrays(setting, quick, animal_dir=None):
    """(images, labels, test images, test labels, foreign images, size)."""
    from mpl_tf.data.sources import animal_shapes, digits

    if setting == "classes":
        source = animal_shapes.load(10, seed=0, labeled_in_unlabeled=False,
                                    directory=animal_dir)
        pool = np.concatenate([source.labeled.images,
                               source.unlabeled.images])
        labels = np.concatenate([source.labeled.labels,
                                 source.unlabeled.labels])
        test = source.test
        keep = test.labels < ANIMAL_IN
        return pool, labels, test.images[keep], test.labels[keep], None, 28
    size = 8 if quick else 16
    source = digits.load(10, seed=0, image_size=size,
                         labeled_in_unlabeled=False)
    pool = np.concatenate([source.labeled.images, source.unlabeled.images])
    labels = np.concatenate([source.labeled.labels, source.unlabeled.labels])
    silhouettes, _ = animal_shapes.read(animal_dir)
    import tensorflow as tf
    foreign = tf.image.resize(silhouettes.astype(np.float32), [size, size],
                              antialias=True).numpy()
    foreign = np.clip(np.round(foreign), 0, 255).astype(np.uint8)
    return (pool, labels, source.test.images, source.test.labels, foreign,
            size)


def draw(setting, seed, arrays, args):
    """The seed's labeled images and pools for every m (paired)."""
    pool, labels, _, _, foreign, _ = arrays
    rng = np.random.default_rng(seed)
    classes = ANIMAL_IN if setting == "classes" else 10
    labeled = np.concatenate([
        rng.choice(np.flatnonzero(labels == c), args.labels_per_class,
                   replace=False) for c in range(classes)])
    rest = np.setdiff1d(np.arange(len(labels)), labeled)
    inside = rng.permutation(rest[labels[rest] < classes])[:args.pool]
    if setting == "classes":
        outside_images = pool[rng.permutation(rest[labels[rest] >=
                                                   classes])[:args.pool]]
    else:
        outside_images = foreign[rng.permutation(len(foreign))[:args.pool]]
    pools = {}
    for m in args.shares:
        n_out = int(round(m / 100 * args.pool))
        pools[m] = (pool[inside[:args.pool - n_out]],
                    labels[inside[:args.pool - n_out]],
                    outside_images[:n_out])
    return (pool[labeled], labels[labeled]), pools


def _write_png(path, image):
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))


def write_folders(root, labeled, pool, test):
    """The user's folders: train/<class>/, unlabeled/<class>/ and
    unlabeled/_other/, eval/<class>/."""
    if os.path.exists(os.path.join(root, "done")):
        return
    for name, (images, labels) in (("train", labeled), ("eval", test)):
        for i, (image, label) in enumerate(zip(images, labels)):
            _write_png(os.path.join(root, name, f"c{label:02d}", f"{i}.png"),
                       image)
    in_images, in_labels, out_images = pool
    for i, (image, label) in enumerate(zip(in_images, in_labels)):
        _write_png(os.path.join(root, "unlabeled", f"c{label:02d}",
                                f"{i}.png"), image)
    for i, image in enumerate(out_images):
        _write_png(os.path.join(root, "unlabeled", "_other", f"{i}.png"),
                   image)
    os.makedirs(os.path.join(root, "unlabeled"), exist_ok=True)
    open(os.path.join(root, "done"), "w", encoding="utf-8").close()


def run_one(method, data_dir, out, size, args):
    flagfile, dataset, extra = METHODS[method]
    cmd = [sys.executable, "-m", "mpl_tf.main",
           f"--flagfile={os.path.join(REPO, 'flags', flagfile)}",
           f"--dataset_name={dataset}", f"--train_dir={data_dir}/train",
           f"--eval_dir={data_dir}/eval", f"--image_size={size}",
           f"--output_dir={out}", "--reset_output_dir",
           "--labeled_in_unlabeled=false", f"--num_train_steps={args.steps}",
           f"--save_every={max(1, args.steps // args.evals)}",
           f"--log_every={max(1, args.steps // args.log_points)}",
           *[e.format(label_threshold=args.label_threshold) for e in extra],
           *args.flag]
    if method != "supervised":
        cmd.append(f"--unlabeled_dir={data_dir}/unlabeled")
    if args.quick:
        cmd += ["--model_type=cnn-tiny", "--train_batch_size=8",
                "--uda_data=2", "--finetune_steps=2"]
    done = os.path.join(out, "result.json")
    if os.path.exists(done):  # finished by an earlier, interrupted sweep
        with open(done, encoding="utf-8") as f:
            return json.load(f)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"{method} {out} failed:\n{proc.stderr[-3000:]}")
    result = _result(out, time.time() - t0)
    with open(done, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return result


def _result(out, seconds):
    return {**read_scores(out), "seconds": seconds,
            "ood": logged_means(os.path.join(out, "train"), OOD_NAMES)}


def logged_means(events_dir, names):
    """Mean of each scalar over every logged step of a run's TensorBoard
    events (a logged value is one step's batch, so one is too noisy)."""
    import tensorflow as tf

    values = {}
    for path in tf.io.gfile.glob(os.path.join(events_dir, "events*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag in names:
                    values.setdefault(value.tag, []).append(
                        float(tf.make_ndarray(value.tensor)))
    return {name: statistics.fmean(v) for name, v in values.items()}


def _mean_std(values):
    values = [100 * v for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {std:.2f}"


def table(results, args):
    lines = [f"{args.setting}: {args.labels_per_class} labels per class, "
             f"pool {args.pool}, {args.steps} steps, seeds per m as run; "
             "test top-1 (%) of the deployed network (MPL: after its "
             "finetune; before it and its teacher in brackets)", "",
             "| method | " + " | ".join(f"m = {m} %" for m in args.shares)
             + " |", "|---|" + "---|" * len(args.shares)]
    for method in METHODS:
        if not any(meth == method for meth, _ in results):
            continue
        cells = []
        for m in args.shares:
            runs = results.get((method, m), [])
            if not runs:
                cells.append("")
                continue
            cell = _mean_std([r["final"] for r in runs]) + f" (n={len(runs)})"
            if method.startswith("mpl"):
                cell += (f" ({_mean_std([r['before_finetune'] for r in runs])}"
                         f"; {_mean_std([r['teacher'] for r in runs])})")
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Out-of-class shares and the teacher's confidence "
              "(means over the logged steps and the seeds):", "",
              "| method | m | " + " | ".join(OOD_NAMES) + " |",
              "|---|---|" + "---|" * len(OOD_NAMES)]
    for (method, m), runs in sorted(results.items()):
        if method == "supervised" or not runs[0]["ood"]:
            continue
        cells = []
        for name in OOD_NAMES:
            values = [r["ood"][name] for r in runs if name in r["ood"]]
            cells.append(f"{statistics.fmean(values):.3f}" if values else "")
        lines.append(f"| {method} | {m} | " + " | ".join(cells) + " |")
    minutes = {method: statistics.fmean(
        r["seconds"] for (meth, _), runs in results.items()
        if meth == method for r in runs) / 60 for method in METHODS
        if any(meth == method for meth, _ in results)}
    lines += ["", "Minutes per run: " + ", ".join(
        f"{k} {v:.1f}" for k, v in minutes.items())]
    return "\n".join(lines)


def plot(results, args, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in METHODS:
        xs = [m for m in args.shares if results.get((method, m))]
        if not xs:
            continue
        ys = [100 * statistics.fmean(r["final"] for r in results[(method, m)])
              for m in xs]
        err = [100 * statistics.stdev([r["final"] for r in results[(method, m)]])
               if len(results[(method, m)]) > 1 else 0.0 for m in xs]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xlabel("out-of-class share of the unlabeled pool (%)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{args.setting}: {args.steps} steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=["classes", "foreign"],
                        default="classes")
    parser.add_argument("--shares", default=None,
                        help="m values in %% (default: classes 0,25,50,75,100; "
                             "foreign 0,25,50,75)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--screen_seeds", default="0",
                        help="seeds for the m values not in --paired_shares")
    parser.add_argument("--paired_shares", default=None,
                        help="m values run with every seed (default: classes "
                             "0,50,100; foreign all)")
    parser.add_argument("--labels_per_class", type=int, default=None)
    parser.add_argument("--pool", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--evals", type=int, default=2)
    parser.add_argument("--log_points", type=int, default=10)
    parser.add_argument("--methods", default="supervised,uda,mpl",
                        help=f"of {', '.join(METHODS)}")
    parser.add_argument("--label_threshold", type=float, default=0.95,
                        help="mpl_confident's --mpl_label_threshold")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(REPO, "runs",
                                                      "mismatch"))
    parser.add_argument("--flag", action="append", default=[],
                        help="an extra mpl_tf flag for every run; repeat")
    parser.add_argument("--animal_dir", default=None,
                        help="Animal-Shape's two files (default: the "
                             "installed animal-mnist package's)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    classes = args.setting == "classes"
    args.shares = [int(m) for m in (args.shares or (
        "0,25,50,75,100" if classes else "0,25,50,75")).split(",")]
    paired = [int(m) for m in (args.paired_shares or (
        "0,50,100" if classes else ",".join(map(str, args.shares)))).split(",")]
    args.labels_per_class = args.labels_per_class or 10 if classes else (
        args.labels_per_class or 5)
    args.pool = args.pool or (2400 if classes else 1000)
    args.steps = args.steps or (1000 if classes else 800)
    if args.quick:
        args.shares, paired = [0, 50], [0, 50]
        args.seeds, args.screen_seeds = "0", "0"
        args.pool, args.steps, args.evals, args.log_points = 40, 4, 1, 2
        args.labels_per_class = 2
    seeds = [int(s) for s in args.seeds.split(",")]
    screen = [int(s) for s in args.screen_seeds.split(",")]
    arrays = _arrays(args.setting, args.quick, args.animal_dir)
    test = (arrays[2], arrays[3])
    jobs = []
    for seed in sorted(set(seeds) | set(screen)):
        labeled, pools = draw(args.setting, seed, arrays, args)
        for m in args.shares:
            if seed not in (seeds if m in paired else screen):
                continue
            data_dir = os.path.join(args.out, "data", f"seed{seed}", f"m{m}")
            write_folders(data_dir, labeled, pools[m], test)
            for method in args.methods.split(","):
                if method == "supervised" and m != args.shares[0]:
                    continue  # no pool: once per seed
                out = os.path.join(args.out, "runs", method, f"seed{seed}",
                                   f"m{m}")
                jobs.append((method, m, data_dir, out))
    t0 = time.time()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [(method, m, pool.submit(run_one, method, data_dir, out,
                                           arrays[5], args))
                   for method, m, data_dir, out in jobs]
        for method, m, future in futures:
            result = future.result()
            results.setdefault((method, m), []).append(result)
            print(f"{method} m={m}: {100 * result['final']:.2f}", flush=True)
    for m in args.shares[1:]:  # the flat line: supervised at every m
        if ("supervised", args.shares[0]) in results:
            results[("supervised", m)] = results[("supervised",
                                                  args.shares[0])]
    text = table(results, args) + (f"\n\nWall time: {(time.time() - t0) / 60:.1f} "
                                   f"min with --jobs={args.jobs}")
    print("\n" + text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "mismatch.md"), "w",
              encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "mismatch.json"), "w",
              encoding="utf-8") as f:
        json.dump({f"{k[0]}/{k[1]}": v for k, v in results.items()}, f)
    png = plot(results, args, os.path.join(args.out, "mismatch.png"))
    print(f"\nwrote {args.out}/mismatch.md" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
