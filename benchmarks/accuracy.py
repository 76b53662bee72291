"""Test accuracy of supervised, UDA and MPL variants on a bundled data set.

    python benchmarks/accuracy.py                       # all methods, 3 seeds
    python benchmarks/accuracy.py --methods=mpl_taylor,mpl_exact_soft
    python benchmarks/accuracy.py --quick               # smoke test (CI)
    python benchmarks/accuracy.py --data=animal_shapes --labels=100 --steps=3000

--data: `digits` (scikit-learn's 8x8 digits, 1,197 training images) or
`animal_shapes` (Animal-Shape, 28x28 silhouettes, 8,000 training images;
`pip install -e '.[bench]'` installs it) or `font_letters` (26 letters from
774 fonts, 28x28, 37,648 training images; needs the Debian package
texlive-fonts-extra and Pillow).

Every method trains with the same step budget (--steps) from the project's
flagfiles (--recipe: flags/digits_50*.cfg, or flags/image_folder*.cfg, the
recipe for your own images), one subprocess per (method, seed), into
<out>/<method>/seed<k>. Reported: mean +- std (over seeds) of the final test
top-1 of the deployed network (the EMA student for MPL); the curves of test
accuracy against steps come from each run's eval_history.jsonl. Writes
<out>/accuracy.md and, if matplotlib is installed, <out>/accuracy.png.
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# method -> (flagfile, extra flags). {data} = the dataset, {n} = number of
# labels, {all} = the size of its training pool.
METHODS = {
    "supervised": ("{recipe}.cfg", ["--dataset_name={data}_{n}"]),
    "uda": ("{recipe}_uda.cfg", ["--dataset_name={data}_{n}_uda"]),
    "mpl_taylor": ("{recipe}_mpl.cfg", ["--dataset_name={data}_{n}_mpl"]),
    "mpl_exact_soft": ("{recipe}_mpl.cfg", [
        "--dataset_name={data}_{n}_mpl", "--mpl_feedback=exact",
        "--mpl_label=soft"]),
    "mpl_exact_sample": ("{recipe}_mpl.cfg", [
        "--dataset_name={data}_{n}_mpl", "--mpl_feedback=exact",
        "--mpl_label=sample"]),
    "mpl_finetune": ("{recipe}_mpl.cfg", [
        "--dataset_name={data}_{n}_mpl", "--finetune_steps={finetune}"]),
    "supervised_all_labels": ("{recipe}.cfg",
                              ["--dataset_name={data}_{all}"]),
}
DEFAULT_METHODS = ("supervised,uda,mpl_taylor,mpl_exact_soft,mpl_finetune,"
                   "supervised_all_labels")
POOL_SIZE = {"digits": 1197, "animal_shapes": 8000, "font_letters": 37648}
QUICK_FLAGS = ["--model_type=cnn-tiny", "--image_size=12",
               "--train_batch_size=8", "--uda_data=2",
               "--mpl_student_lr_wait_steps=0", "--eval_batch_size=600"]


def flag_value(flagfile, name, extra=(), default=None):
    """The value --name takes in a flagfile (its --flagfile includes read
    in order, later lines winning) with `extra` flags after it."""
    value = default

    def read(path):
        nonlocal value
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("--flagfile="):
                    read(os.path.join(REPO, line.split("=", 1)[1]))
                elif line.startswith(f"--{name}="):
                    value = line.split("=", 1)[1]
    read(os.path.join(REPO, "flags", flagfile))
    for arg in extra:
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def image_passes(method, args):
    """Images through a network per step (a training pass counts 3: forward
    and backward), and those of the finetune stage (`mpl_finetune`, or a
    recipe whose MPL flagfile finetunes). Teacher and student are the same
    network in these recipes, so this is proportional to training FLOPs."""
    flagfile, extra = METHODS[method]
    flagfile = flagfile.format(recipe=args.recipe)
    extra = [e for e in extra if "{finetune}" not in e] + [
        e.format(finetune=args.finetune_steps) for e in extra
        if "{finetune}" in e] + args.flag
    b = int(flag_value(flagfile, "train_batch_size", extra, 128))
    mu = int(flag_value(flagfile, "uda_data", extra, 4))
    if method.startswith("mpl"):
        # teacher on B(1 + 2mu), student on B(1 + mu), CE_old and CE_new
        per_step = 3 * b * (1 + 2 * mu) + 3 * b * (1 + mu) + 2 * b
        finetune = int(flag_value(flagfile, "finetune_steps", extra, 0))
        return per_step, finetune * 3 * b
    if method == "uda":
        return 3 * b * (1 + 2 * mu), 0
    return 3 * b, 0


def steps_for(method, args):
    """--steps, or with --compute=flops the steps whose image passes equal
    those of `--compute_like` (MPL + its finetune) at --steps."""
    if args.compute == "steps" or method == args.compute_like:
        return args.steps
    per_step, finetune = image_passes(args.compute_like, args)
    budget = args.steps * per_step + finetune
    own_step, own_finetune = image_passes(method, args)
    return max(1, round((budget - own_finetune) / own_step))


def run_one(method, seed, args):
    flagfile, extra = METHODS[method]
    steps = steps_for(method, args)
    out = os.path.join(args.out, method, f"seed{seed}")
    flagfile = flagfile.format(recipe=args.recipe)
    cmd = [sys.executable, "-m", "mpl_tf.main",
           f"--flagfile={os.path.join(REPO, 'flags', flagfile)}",
           *[e.format(data=args.data, n=args.labels, all=POOL_SIZE[args.data],
                      finetune=args.finetune_steps)
             for e in extra],
           f"--seed={seed}", f"--output_dir={out}", "--reset_output_dir",
           f"--num_train_steps={steps}",
           f"--save_every={max(1, steps // args.evals)}",
           f"--log_every={max(1, steps // args.evals)}"]
    if args.quick:
        cmd += QUICK_FLAGS
    cmd += args.flag
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"{method} seed {seed} failed:\n{proc.stderr[-3000:]}")
    return {**read_scores(out), "seconds": time.time() - t0, "steps": steps}


def read_scores(out):
    """A finished run's test top-1 curve, its deployed network's final score
    (MPL: the student after its finetune, if one ran), the score before the
    finetune and the teacher's, from its eval_history.jsonl files."""
    with open(os.path.join(out, "eval_history.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    curve = [(r["step"], r["test"]["top1"]) for r in records]
    final = before_finetune = curve[-1][1]
    # MPL: its teacher, evaluated at the same checkpoint.
    teacher = records[-1].get("teacher", {}).get("test", {}).get("top1")
    ft_history = os.path.join(out, "finetune", "eval_history.jsonl")
    if os.path.exists(ft_history):  # MPL + finetune: the finetuned student
        with open(ft_history, encoding="utf-8") as f:
            final = [json.loads(line) for line in f][-1]["test"]["top1"]
    return {"curve": curve, "final": final, "teacher": teacher,
            "before_finetune": before_finetune,
            "finetuned": os.path.exists(ft_history)}


def table(results, args):
    extra = f", flags {' '.join(args.flag)}" if args.flag else ""
    budget = (f"{args.steps} steps" if args.compute == "steps" else
              f"equal training FLOPs: those of {args.compute_like} at "
              f"{args.steps} steps, finetune included")
    lines = [f"{args.data}, {args.labels} labels, recipe flags/{args.recipe}"
             f"*.cfg, {budget}, seeds "
             f"{args.seeds}{extra}; test top-1 (%) of the deployed network "
             "(MPL: the EMA student; its teacher beside it)", "",
             "| method | steps | mean | std | per seed | MPL teacher, mean "
             "| before finetune, mean | minutes per run |",
             "|---|---|---|---|---|---|---|---|"]
    for method, runs in results.items():
        finals = [100 * r["final"] for r in runs]
        std = statistics.stdev(finals) if len(finals) > 1 else 0.0
        minutes = statistics.mean(r["seconds"] for r in runs) / 60
        teachers = [100 * r["teacher"] for r in runs
                    if r.get("teacher") is not None]
        teacher = f"{statistics.mean(teachers):.2f}" if teachers else "—"
        before = [100 * r["before_finetune"] for r in runs]
        before = (f"{statistics.mean(before):.2f}"
                  if any(r.get("finetuned") for r in runs) else "—")
        lines.append(f"| {method} | {runs[0]['steps']} | "
                     f"{statistics.mean(finals):.2f} | "
                     f"{std:.2f} | {', '.join(f'{x:.2f}' for x in finals)} | "
                     f"{teacher} | {before} | {minutes:.1f} |")
    return "\n".join(lines)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, runs in results.items():
        steps = [s for s, _ in runs[0]["curve"]]
        mean = [100 * statistics.mean(r["curve"][i][1] for r in runs)
                for i in range(len(steps))]
        ax.plot(steps, mean, marker="o", label=method)
    ax.set_xlabel("step")
    ax.set_ylabel("test top-1 (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data", default="digits", choices=sorted(POOL_SIZE))
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument(
        "--recipe", default="digits_50", choices=["digits_50", "image_folder"],
        help="the flagfile family: flags/<recipe>.cfg (supervised), "
             "<recipe>_uda.cfg, <recipe>_mpl.cfg")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--evals", type=int, default=4,
                        help="evaluations per run (points on the curve)")
    parser.add_argument("--finetune_steps", type=int, default=500)
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "accuracy"))
    parser.add_argument("--flag", action="append", default=[],
                        help="an extra mpl_tf flag for every run, e.g. "
                             "--flag=--mpl_student_lr_wait_steps=100; repeat")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once (minutes per run then include the "
                             "sharing of the CPU)")
    parser.add_argument(
        "--compute", choices=["steps", "flops"], default="steps",
        help="steps: every method runs --steps; flops: every method gets "
             "the training FLOPs (images through the network, a training "
             "pass counting 3) of --compute_like at --steps, finetune "
             "included: UDA and supervised run proportionally more steps")
    parser.add_argument("--compute_like", default="mpl_taylor")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.methods, args.seeds, args.steps = "supervised,mpl_taylor", "0", 4
        args.evals, args.finetune_steps = 2, 2
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {m: [pool.submit(run_one, m, s, args) for s in seeds]
                   for m in methods}
        results = {}
        for method in methods:
            results[method] = [f.result() for f in futures[method]]
            print(f"{method}: "
                  f"{[round(100 * r['final'], 2) for r in results[method]]}",
                  flush=True)
    text = table(results, args)
    print("\n" + text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "accuracy.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "accuracy.json"), "w",
              encoding="utf-8") as f:
        json.dump(results, f)
    png = plot(results, os.path.join(args.out, "accuracy.png"))
    print(f"\nwrote {args.out}/accuracy.md" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
