"""Steps per second of the command line's training loop with 1 and with N
steps per tf.function call (--iterations_per_loop), and the host's share.

    python benchmarks/loop_speed.py            # the digits job: 1 vs 50
    python benchmarks/loop_speed.py --quick    # tiny smoke run (CI)

The job is flags/digits_50_mpl.cfg (cnn-16, 16x16 digits, B=16, mu=7) on
its real input pipeline, driven by the CLI's own code: `Loop._train_fn`, one
call per loop, the stacked metrics read back once per call, as
`Loop._train` does (no logging, checkpoints or evals). Both modes train the
same model in ONE process, interleaved: each round times `--steps` steps of
every mode, the order alternating between rounds, so machine noise hits all
modes alike. The host's share of a step at one step per call is
(time per step at 1 - time per step at N) / time per step at 1: from the
median round of each mode, and paired within each round (the two modes run
back to back, so slow drifts of the machine's load cancel). On a machine
shared with other jobs the wall time swings by tens of percent between
rounds, so the same share is also computed from this process's CPU time
(all its threads: the step's kernels, tf.data and the host's Python), which
other jobs disturb far less.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402  (sets the log level first)

console.import_tensorflow()

from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from mpl_tf import flags as mpl_flags  # noqa: E402
from mpl_tf import main as mpl_main  # noqa: E402

QUICK = ["--dataset_name=digits_30_mpl", "--model_type=cnn-tiny",
         "--image_size=12", "--train_batch_size=8", "--uda_data=2"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flagfile", default=os.path.join(REPO, "flags",
                                                      "digits_50_mpl.cfg"))
    p.add_argument("--per_loop", default="1,50",
                   help="comma list of steps per call to compare")
    p.add_argument("--steps", type=int, default=100,
                   help="timed steps per mode per round (a multiple of "
                        "every --per_loop)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed calls of each mode first (tracing)")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and batch, few steps: a smoke test")
    args = p.parse_args(argv)
    args.per_loop = [int(n) for n in args.per_loop.split(",")]
    if args.quick:
        args.per_loop, args.steps, args.rounds, args.warmup = [1, 5], 10, 2, 1
    bad = [n for n in args.per_loop if args.steps % n]
    if bad:
        p.error(f"--steps={args.steps} is not a multiple of {bad}")
    return args


def build_loop(args, output_dir):
    overrides = [f"--output_dir={output_dir}", "--num_train_steps=1000000",
                 "--save_every=1000000", "--log_every=1000000"]
    flags.FLAGS(["loop_speed", f"--flagfile={args.flagfile}", *overrides,
                 *(QUICK if args.quick else [])])
    params = mpl_flags.from_flags()
    run = mpl_main.Run(params)
    loop = run.main_loop()
    dataset = loop.strategy.distribute_datasets_from_function(
        lambda ctx: loop.input.dataset(ctx, start_step=0))
    return loop, params, iter(dataset), loop._train_fn()


def time_steps(train_loop, iterator, per_loop, steps):
    """(wall, CPU) seconds for `steps` steps in calls of `per_loop` steps."""
    length = tf.constant(per_loop, tf.int32)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps // per_loop):
        rows, in_a_row = train_loop(iterator, length)
        rows.numpy(), int(in_a_row)  # the host's read, as in Loop._train
    return time.perf_counter() - t0, time.process_time() - c0


def share(times, one, most):
    """(host share from the median rounds, sorted per-round paired shares)"""
    med = {n: statistics.median(t) for n, t in times.items()}
    paired = sorted((a - b) / a for a, b in zip(times[one], times[most]))
    return (med[one] - med[most]) / med[one], paired


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        loop, p, iterator, train_loop = build_loop(args, tmp)
        for n in args.per_loop:
            for _ in range(args.warmup):
                time_steps(train_loop, iterator, n, n)
        times = {n: [] for n in args.per_loop}
        cpu = {n: [] for n in args.per_loop}
        for r in range(args.rounds):
            order = args.per_loop if r % 2 == 0 else args.per_loop[::-1]
            for n in order:
                wall, used = time_steps(train_loop, iterator, n, args.steps)
                times[n].append(wall / args.steps)
                cpu[n].append(used / args.steps)
        skipped = int(loop.model.nonfinite_steps.numpy())
    med = {n: statistics.median(t) for n, t in times.items()}
    med_cpu = {n: statistics.median(t) for n, t in cpu.items()}
    print(f"\n{p.dataset_name}, {p.model_type} (image {loop.source.image_size}, "
          f"B={p.train_batch_size}, mu={p.uda_data}), "
          f"{loop.strategy.num_replicas_in_sync} replica(s), {args.rounds} "
          f"rounds of {args.steps} steps per mode, interleaved; "
          f"{os.cpu_count()} cores\n")
    print("| steps per call | steps/s (median round) | min | max | "
          "ms per step | CPU ms per step |")
    print("|---|---|---|---|---|---|")
    for n in args.per_loop:
        rates = [1 / t for t in times[n]]
        print(f"| {n} | {1 / med[n]:.2f} | {min(rates):.2f} | "
              f"{max(rates):.2f} | {1000 * med[n]:.1f} | "
              f"{1000 * med_cpu[n]:.1f} |")
    one, most = min(args.per_loop), max(args.per_loop)
    print(f"\nhost's share of a step at {one} step per call (vs {most}):")
    for name, data in (("wall time", times), ("CPU time", cpu)):
        median_share, paired = share(data, one, most)
        print(f"  {name}: {100 * median_share:.1f} % from the median rounds; "
              f"paired by round: median {100 * statistics.median(paired):.1f}"
              f" %, from {100 * paired[0]:.1f} % to {100 * paired[-1]:.1f} %")
    if skipped:
        print(f"({skipped} of the timed steps were skipped as non-finite)")


if __name__ == "__main__":
    main()
