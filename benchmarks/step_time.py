"""Seconds per training step of supervised, UDA, MPL-Taylor and MPL-exact.

    python benchmarks/step_time.py                 # WRN-28-2, 32x32, B=16, mu=7
    python benchmarks/step_time.py --quick         # tiny smoke run (CI)
    python benchmarks/step_time.py --jit --bf16    # XLA, mixed bfloat16
    python benchmarks/step_time.py --sweep=4,8,16,32 --plot=sweep.svg \
        --torch_python=/path/to/torch/bin/python   # the curve over B

All modes are timed in ONE process, interleaved step by step, on a fixed
synthetic batch (the input pipeline is benchmarked separately), so machine
noise hits every mode alike; with --torch_python the port's step
(torch_step.py, a child process that steps on request) takes its turn in
the same rounds. Peak resident memory needs a clean process per
mode: each mode is re-run alone in a child process (on by default; --no-memory skips
it) and the child's peak RSS (/proc VmHWM) is reported.

FLOPs: the network's forward FLOPs per image come from TensorFlow's graph
profiler (float_operation) on the inference graph; a training pass counts as
3x forward (forward + backward w.r.t. activations and weights). The MPL
Taylor step is teacher 3F x B(1+2mu) + student 3F x B(1+mu) + student F x B.
Peak FLOP/s of the machine: a float32 2048^3 matmul, timed.

--sweep=B1,B2,...: one row per (implementation, B) instead, --modes (default
taylor) at each batch size, all interleaved in one process, plus the port's
step per B when --torch_python is given; --plot=PATH draws seconds per
teacher image and peak memory against B as an SVG (standard library only).
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mpl_tf import config, task  # noqa: E402
from mpl_tf.data.source import Source, Split  # noqa: E402
from mpl_tf.models import layers  # noqa: E402

PORT = {"taylor": "mpl", "uda": "uda"}  # our mode -> torch_step.py's --mode


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_type", default="wrn-28-2")
    p.add_argument("--teacher_model_type", default=None,
                   help="MPL modes: the teacher's network (e.g. wrn-28-10); "
                        "unset: --model_type")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mu", type=int, default=7)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--modes",
                   help="comma list (default supervised,uda,taylor,exact; "
                        "with --sweep, taylor); add _bf16 to a mode (e.g. "
                        "taylor_bf16) to time it under mixed_bfloat16, _kerasbn for Keras's "
                        "unfused batch norm, _kerasact for Keras's leaky ReLU "
                        "backward, _keepinput for batch norm + leaky ReLU "
                        "keeping their inputs for backprop, _lowmem for --mpl_low_memory, "
                        "_keepteacher for --nompl_recompute_teacher, in the "
                        "same process; `reduced` is Reduced MPL (a reduced teacher "
                        "on stored distributions, no teacher network)")
    p.add_argument("--exact_label", default="soft")
    p.add_argument("--jit", action="store_true", help="XLA jit_compile")
    p.add_argument("--bf16", action="store_true", help="mixed_bfloat16")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--torch_python",
                   help="a Python with PyTorch: also time the same MPL step "
                        "in PyTorch (benchmarks/torch_step.py, WRN-28-k only)")
    p.add_argument("--sweep", nargs="?", const="4,8,16,32",
                   help="comma list of batch sizes (default 4,8,16,32): "
                        "time --modes at each, one row per (implementation, "
                        "B); replaces --batch")
    p.add_argument("--plot", help="with --sweep: write its curves to this SVG")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and batch: a smoke test")
    p.add_argument("--child", help=argparse.SUPPRESS)  # run one mode, print RSS
    args = p.parse_args(argv)
    if args.plot and not args.sweep:
        p.error("--plot needs --sweep")
    if args.modes is None:
        args.modes = "taylor" if args.sweep else "supervised,uda,taylor,exact"
    if args.quick:  # a smoke test: small everything
        args.model_type, args.image_size = "cnn-tiny", 12
        args.batch, args.mu, args.steps, args.warmup = 4, 2, 3, 1
        if args.sweep:
            args.sweep, args.steps = "2,4", 1
    return args


def teacher_images(mode, batch, mu):
    """Images through the teacher network per step: B labeled + B*mu weak +
    B*mu strong (supervised: its one network's B labeled images)."""
    return batch if mode.startswith("supervised") else batch * (1 + 2 * mu)


def synthetic_source(args, num_classes=10):
    rng = np.random.default_rng(0)
    size = args.image_size
    images = lambda n: rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, 256).astype(np.int32)
    return Source(name="synthetic", num_classes=num_classes, image_size=size,
                  channels=3, mean=(127.5,) * 3, std=(64.0,) * 3,
                  labeled=Split(images(256), labels), unlabeled=Split(images(512)),
                  test=Split(images(64), labels[:64]))


def build_mode(mode, args, source):
    """(trainer model, step function, fixed batch) for one mode."""
    import keras

    # "<mode>_bf16" builds that mode under mixed_bfloat16 beside float32
    # ones; "<mode>_kerasbn" with Keras's unfused batch norm and
    # "<mode>_kerasact" with Keras's leaky ReLU backward (ablations).
    bf16 = args.bf16 or "_bf16" in mode
    keras_bn, keras_act = "_kerasbn" in mode, "_kerasact" in mode
    keep_input = "_keepinput" in mode  # BN + act without the recompute
    low_memory = "_lowmem" in mode  # --mpl_low_memory (Taylor only)
    keep_teacher = "_keepteacher" in mode  # --nompl_recompute_teacher
    sized = re.search(r"_b(\d+)", mode)  # "<mode>_b8": batch 8 (--sweep)
    b = int(sized.group(1)) if sized else args.batch
    mode = mode.split("_")[0]
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if bf16 else "float32")
    exact = mode == "exact"
    p = config.defaults(
        dataset_name="digits_50" + {"supervised": "", "uda": "_uda"}.get(
            mode, "_mpl"),
        output_dir="/tmp/unused", model_type=args.model_type,
        train_batch_size=b, uda_data=args.mu,
        mpl_student_lr_wait_steps=0, mpl_feedback="exact" if exact else "taylor",
        mpl_label=args.exact_label if exact else "hard", ema_decay=0.995,
        mpl_low_memory=low_memory, mpl_recompute_teacher=not keep_teacher,
        teacher_model_type=args.teacher_model_type,
        # Reduced MPL reads stored distributions; the batch below has them.
        teacher_labels="synthetic" if mode == "reduced" else None,
        label_smoothing=0.15, weight_decay=5e-4)
    strategy = tf.distribute.get_strategy()
    model = task.build_trainer(p, source, strategy)
    for net in model.networks().values():
        for layer in net.layers:
            if isinstance(layer, layers.BatchNorm):
                layer.fused = not keras_bn
            if isinstance(layer, layers.LeakyReLU):
                layer.from_output = not keras_act
            if isinstance(layer, layers.BatchNormLeakyReLU):
                layer.recompute = not (keep_input or keras_bn)
    rng = np.random.default_rng(1)
    size, u = args.image_size, b * args.mu
    img = lambda n: tf.constant(rng.uniform(0, 255, (n, size, size, 3)), tf.float32)
    batch = {"l_images": img(b),
             "l_labels": tf.constant(rng.integers(0, 10, b), tf.int32)}
    if mode != "supervised":
        batch.update(u_weak=img(u), u_strong=img(u))
    if mode == "reduced":
        probs = lambda n: tf.constant(rng.dirichlet(np.ones(10), n),
                                      tf.float32)
        batch.update(l_teacher=probs(b), u_teacher=probs(u))

    @tf.function(jit_compile=args.jit)
    def step(batch):
        return strategy.run(model.train_step, args=(batch,))
    return model, step, batch


# Seconds of idle before each timed step, so that the previous step's
# worker threads (PyTorch's OpenMP ones, TensorFlow's) have stopped spinning
# and do not compete with it.
SETTLE_SECONDS = 0.2


def time_modes(args, modes, ports=None):
    """Median-ready step times of each mode, all interleaved step by step in
    one loop, with the port's steps (`ports`: name -> PortServer) in the
    same rounds, so the machine's drift hits every row alike."""
    source = synthetic_source(args)
    built = {m: build_mode(m, args, source) for m in modes}
    ports = ports or {}
    times = {m: [] for m in [*modes, *ports]}
    for i in range(args.warmup + args.steps):
        for m in modes:  # interleaved: noise is shared by all modes
            _, step, batch = built[m]
            if ports:
                time.sleep(SETTLE_SECONDS)
            t0 = time.perf_counter()
            out = step(batch)
            float(next(iter(out.values())))  # wait for the step to finish
            if i >= args.warmup:
                times[m].append(time.perf_counter() - t0)
        for name, port in ports.items():
            time.sleep(SETTLE_SECONDS)
            seconds = port.step()
            if i >= args.warmup:
                times[name].append(seconds)
    return times, built


def forward_flops(model, size):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3]))
    graph = convert_variables_to_constants_v2(concrete).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(graph=graph, options=opts)
    return prof.total_float_ops


def machine_flops(n=2048, reps=5):
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def peak_rss_bytes():
    """This process's peak resident memory.

    /proc's VmHWM belongs to the process image, while getrusage's ru_maxrss
    survives exec and so reports the (larger) parent's peak in a child.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_peak_rss(mode, argv):
    """Peak RSS (bytes) of a fresh process running `mode` alone."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, f"--modes={mode}",
           f"--child={mode}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss"]


def child_peaks(args, argv, modes):
    """{mode: peak RSS bytes}, each mode alone in a fresh process; none with
    --no-memory, and --quick measures the last mode only (each child pays
    TensorFlow's start-up)."""
    if not args.memory:
        return {}
    passthrough = [a for a in argv if not a.startswith("--modes")]
    return {m: child_peak_rss(m, passthrough)
            for m in (modes[-1:] if args.quick else modes)}


class PortServer:
    """The port's step (torch_step.py's `mode`: mpl, or the teacher's uda
    step alone) at `batch`, in a child process that runs one step per
    request (its --serve), so its steps interleave with ours."""

    def __init__(self, args, mode, batch):
        if not args.model_type.startswith("wrn-28-"):
            raise SystemExit("--torch_python needs a --model_type=wrn-28-k")
        cmd = [args.torch_python,
               os.path.join(REPO, "benchmarks", "torch_step.py"), "--serve",
               f"--mode={mode}", f"--batch={batch}", f"--mu={args.mu}",
               f"--image_size={args.image_size}",
               f"--width={args.model_type.split('-')[-1]}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self._line() != "ready":
            raise RuntimeError(f"{cmd}: did not start")

    def _line(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the port's step (pid {self.proc.pid}) "
                               f"exited with {self.proc.wait()}")
        return line.strip()

    def step(self):
        """Runs one step; its seconds, timed inside the child."""
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self._line())

    def close(self):
        """Ends the child; its JSON summary (torch version, peak RSS)."""
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        summary = json.loads(self._line())
        self.proc.wait()
        return summary


def sweep(args, argv, modes):
    """--sweep: each mode's step (and the port's) at each batch size."""
    batches = [int(b) for b in args.sweep.split(",")]
    runs = {(m, b): f"{m}_b{b}" for m in modes for b in batches}  # build_mode
    ports = {(m, b): PortServer(args, PORT[m], b)
             for m in modes if args.torch_python and m in PORT
             for b in batches}
    times, _ = time_modes(args, list(runs.values()), ports)
    summaries = {key: port.close() for key, port in ports.items()}
    peaks = child_peaks(args, argv, list(runs.values()))
    # implementation -> (our mode, {B: (median s/step, peak RSS bytes)})
    rows = {f"mpl_tf {m}": (m, {b: (statistics.median(times[runs[m, b]]),
                                    peaks.get(runs[m, b])) for b in batches})
            for m in modes}
    port_of = {}  # our implementation -> the port's
    for m in modes:
        if (m, batches[0]) in ports:
            name = f"port {m} (PyTorch {summaries[m, batches[0]]['torch']})"
            rows[name] = (m, {b: (statistics.median(times[m, b]),
                                  summaries[m, b]["peak_rss"])
                              for b in batches})
            port_of[f"mpl_tf {m}"] = name
    size, mu = args.image_size, args.mu
    title = (f"{args.model_type} {size}x{size}, mu={mu}, {args.steps} timed "
             f"steps after {args.warmup} warm-up, jit={args.jit}, "
             f"bf16={args.bf16}, {os.cpu_count()} cores")
    print(f"\nBatch sweep: {title}. mpl_tf's steps are timed interleaved in "
          "one process, with the port's steps (one process per B, stepping "
          "on request) in the same rounds; peak RSS is a clean process's "
          "per row (the port's: its timing process). A "
          "teacher image is one image through the teacher network: a step's "
          f"teacher sees B(1+2mu) = {1 + 2 * mu}B (B labeled, B*mu weak, "
          "B*mu strong).")
    if not args.torch_python:
        print("Port rows skipped: no --torch_python.")
    print("\n| implementation | B | median s/step | ms per teacher image "
          "| peak RSS GiB | mpl_tf / port, time | mpl_tf / port, memory |")
    print("|---|---|---|---|---|---|---|")
    gib = lambda x: f"{x / 2**30:.2f}" if x else "-"
    ratio = lambda x, y: f"{x / y:.2f}" if x and y else "-"
    for b in batches:
        for name, (m, by_b) in rows.items():
            med, peak = by_b[b]
            port_med, port_peak = (rows[port_of[name]][1][b]
                                   if name in port_of else (None, None))
            print(f"| {name} | {b} | {med:.3f} | "
                  f"{1e3 * med / teacher_images(m, b, mu):.2f} | {gib(peak)} | "
                  f"{ratio(med, port_med)} | {ratio(peak, port_peak)} |")
    if args.plot:
        svg_plot(args.plot, title, [
            ("time", "ms per teacher image",
             {n: {b: 1e3 * t / teacher_images(m, b, mu)
                  for b, (t, _) in by_b.items()} for n, (m, by_b) in rows.items()}),
            ("memory", "peak RSS GiB",
             {n: {b: p / 2**30 for b, (_, p) in by_b.items() if p}
              for n, (_, by_b) in rows.items()})])
        print(f"\nplot: {args.plot}")


def svg_plot(path, title, panels, width=420, height=300):
    """Line charts side by side, as an SVG (standard library only).

    panels: [(id, y label, {series: {B: y}})]; B on a log2 axis, y from 0.
    Each point is a circle titled "<series> B=<B>: <y>". Empty series and
    panels are left out.
    """
    from xml.sax.saxutils import escape
    panels = [(pid, label, {n: pts for n, pts in series.items() if pts})
              for pid, label, series in panels]
    panels = [panel for panel in panels if panel[2]]
    names = list(dict.fromkeys(n for _, _, series in panels for n in series))
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
    xs = sorted({b for _, _, series in panels for pts in series.values()
                 for b in pts})
    left, right, top, bottom = 55, 20, 45, 40
    lo, span = math.log2(xs[0]), math.log2(xs[-1] / xs[0]) or 1.0
    px = lambda b: left + (width - left - right) * (math.log2(b) - lo) / span
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(panels)}"'
           f' height="{height + 18 * len(names)}" font-family="sans-serif"'
           f' font-size="11">',
           f'<text x="8" y="16" font-size="13">{escape(title)}</text>']
    for i, (pid, label, series) in enumerate(panels):
        # y ticks: 0 and round steps (1, 2, 2.5 or 5 x 10^k) up to the top.
        ymax = max(y for pts in series.values() for y in pts.values())
        unit = 10 ** math.floor(math.log10(ymax / 4))
        step = next(m * unit for m in (1, 2, 2.5, 5, 10) if m * unit >= ymax / 4)
        ticks = [step * k for k in range(math.ceil(ymax / step) + 1)]
        py = lambda y, top_y=ticks[-1]: (height - bottom
                                          - (height - top - bottom) * y / top_y)
        out += [f'<g id="{pid}" transform="translate({i * width},0)">',
                f'<text x="{left}" y="{top - 12}" font-size="12">{label} vs '
                'batch size B</text>',
                f'<path d="M{left},{top}V{height - bottom}H{width - right}" '
                'fill="none" stroke="black"/>']
        for b in xs:
            out.append(f'<text x="{px(b):.1f}" y="{height - bottom + 14}" '
                       f'text-anchor="middle">{b}</text>')
        for y in ticks:
            out.append(f'<text x="{left - 4}" y="{py(y) + 4:.1f}" '
                       f'text-anchor="end">{y:g}</text>')
        out.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" '
                   'text-anchor="middle">B (log scale)</text>')
        for name, pts in series.items():
            color = colors[names.index(name) % len(colors)]
            line = " ".join(f"{px(b):.1f},{py(y):.1f}"
                            for b, y in sorted(pts.items()))
            out.append(f'<polyline points="{line}" fill="none" '
                       f'stroke="{color}" stroke-width="1.5"/>')
            out += [f'<circle cx="{px(b):.1f}" cy="{py(y):.1f}" r="3" '
                    f'fill="{color}"><title>{escape(name)} B={b}: {y:.4g}'
                    '</title></circle>' for b, y in sorted(pts.items())]
        out.append("</g>")
    for k, name in enumerate(names):
        y = height + 18 * k + 6
        out += [f'<rect x="{left}" y="{y - 8}" width="14" height="8" '
                f'fill="{colors[k % len(colors)]}"/>',
                f'<text x="{left + 20}" y="{y}">{escape(name)}</text>']
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if args.child:
        time_modes(args, modes)
        print(json.dumps({"peak_rss": peak_rss_bytes()}))
        return
    if args.sweep:
        sweep(args, argv, modes)
        return
    ports = {ours: PortServer(args, port, args.batch)
             for ours, port in PORT.items()
             if args.torch_python and ours in modes}
    times, built = time_modes(args, modes,
                              {(m, "port"): p for m, p in ports.items()})
    summaries = {m: port.close() for m, port in ports.items()}
    peaks = child_peaks(args, argv, modes)
    for ours, row in summaries.items():
        name = f"{ours} (port's step, PyTorch {row['torch']})"
        times[name], peaks[name] = times.pop((ours, "port")), row["peak_rss"]
        modes.append(name)
    fwd = forward_flops(next(iter(built.values()))[0].deployed, args.image_size)
    peak_flops = machine_flops(512 if args.quick else 2048)
    b, mu = args.batch, args.mu
    taylor_flops = 3 * fwd * (b * (1 + 2 * mu) + b * (1 + mu)) + fwd * b
    med = {m: statistics.median(t) for m, t in times.items()}
    teacher = (f" (MPL teacher {args.teacher_model_type})"
               if args.teacher_model_type else "")
    print(f"\n{args.model_type}{teacher} {args.image_size}x{args.image_size}, B={b}, "
          f"mu={mu}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"jit={args.jit}, bf16={args.bf16}, threads={os.cpu_count()} cores\n")
    print("| step | median s | min s | max s | teacher img/s | peak RSS GiB "
          "| / UDA median |")
    print("|---|---|---|---|---|---|---|")
    for m in modes:
        t = times[m]
        ratio = f"{med[m] / med['uda']:.2f}" if "uda" in med else "-"
        peak = f"{peaks[m] / 2**30:.2f}" if m in peaks else "-"
        print(f"| {m} | {med[m]:.3f} | {min(t):.3f} | {max(t):.3f} | "
              f"{teacher_images(m, b, mu) / med[m]:.0f} | {peak} | {ratio} |")
    if "taylor" in med and not args.teacher_model_type:  # one network's FLOPs
        achieved = taylor_flops / med["taylor"]
        print(f"\nforward FLOPs per image: {fwd / 1e6:.1f} M; MPL Taylor step "
              f"{taylor_flops / 1e9:.2f} GFLOP -> {achieved / 1e9:.1f} GFLOP/s "
              f"achieved; machine float32 matmul {peak_flops / 1e9:.1f} "
              f"GFLOP/s ({100 * achieved / peak_flops:.0f} % of it)")
    for ours in ("taylor", "uda"):
        port = next((m for m in med if m.startswith(f"{ours} (port")), None)
        if port and ours in med:
            mem = (f", peak memory {peaks[ours] / peaks[port]:.2f}x"
                   if ours in peaks else "")
            print(f"mpl_tf {ours} / the port's: step time "
                  f"{med[ours] / med[port]:.2f}x{mem}")
    if "taylor" in med and "exact" in med:
        mem = (f", peak memory {peaks['exact'] / peaks['taylor']:.2f}x"
               if {"exact", "taylor"} <= set(peaks) else "")
        print(f"exact / taylor: step time {med['exact'] / med['taylor']:.2f}x"
              f"{mem}")


if __name__ == "__main__":
    main()
