"""Reduced MPL on digits: does an adaptive reduced teacher beat fixed labels?

    python benchmarks/reduced_mpl.py --seeds=0,1,2 --jobs=2

Per seed: the large teacher (flags/digits_50_rmpl_teacher.cfg: cnn-small,
UDA) is trained and labels the training images (--task_mode=label); then
cnn-16 students learn from its stored distributions (flags/digits_50_rmpl.cfg)
with the reduced teacher
  fixed:       frozen at the identity (--mpl_teacher_lr=0): the large
               teacher's own labels, plain self-training / distillation;
  taylor:      trained by the Taylor feedback (hard labels);
  exact_soft:  trained by the exact meta-gradient (soft labels).
Reported: test top-1 of the EMA student, mean +- std over seeds, beside
the large teacher's own. Writes <out>/reduced_mpl.md.
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENTS = {
    "fixed": ["--mpl_teacher_lr=0"],
    "taylor": [],
    "exact_soft": ["--mpl_feedback=exact", "--mpl_label=soft"],
}


def _run(args, *flags):
    cmd = [sys.executable, "-m", "mpl_tf.main", *flags]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _final(out):
    with open(os.path.join(out, "eval_history.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f][-1]["test"]["top1"]


def teacher(seed, args):
    out = os.path.join(args.out, "teacher", f"seed{seed}")
    common = ["--flagfile=flags/digits_50_rmpl_teacher.cfg",
              f"--output_dir={out}", f"--seed={seed}",
              f"--num_train_steps={args.steps}", *args.flag]
    _run(args, *common, "--reset_output_dir")
    stdout = _run(args, *common, "--task_mode=label")
    rate = float(stdout.rsplit("(", 1)[1].split(" images/s")[0])
    return out, _final(out), rate


def student(method, seed, labels, args):
    out = os.path.join(args.out, method, f"seed{seed}")
    _run(args, "--flagfile=flags/digits_50_rmpl.cfg", f"--output_dir={out}",
         "--reset_output_dir", f"--seed={seed}", f"--teacher_labels={labels}",
         f"--num_train_steps={args.steps}", *STUDENTS[method], *args.flag)
    return _final(out)


def _row(name, values):
    values = [100 * v for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"| {name} | {statistics.mean(values):.2f} ± {std:.2f} | "
            f"{', '.join(f'{v:.2f}' for v in values)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--methods", default=",".join(STUDENTS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--flag", action="append", default=[],
                        help="an extra mpl_tf flag for every run; repeat")
    parser.add_argument("--out", default=os.path.join(REPO, "runs",
                                                      "reduced_mpl"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        teachers = dict(zip(seeds, pool.map(lambda s: teacher(s, args),
                                            seeds)))
        futures = {m: [pool.submit(student, m, s, teachers[s][0], args)
                       for s in seeds] for m in methods}
        results = {m: [f.result() for f in fs] for m, fs in futures.items()}
    lines = [f"digits_50, {args.steps} steps, seeds {args.seeds}; test top-1 "
             "(%) of the EMA student (the large teacher: its EMA)", "",
             "| network | mean ± std | per seed |", "|---|---|---|",
             _row("large teacher (cnn-small, UDA)",
                  [teachers[s][1] for s in seeds])]
    lines += [_row(f"cnn-16 student, reduced teacher {m}", results[m])
              for m in methods]
    rates = [teachers[s][2] for s in seeds]
    lines += ["", f"labeling: {statistics.mean(rates):.0f} images/s"]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "reduced_mpl.md"), "w",
              encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
