"""Launch N mpl_tf workers on this machine under MultiWorkerMirroredStrategy.

    python scripts/launch_local_workers.py --num_workers=2 -- \
        --flagfile=flags/digits_50_mpl.cfg --output_dir=runs/mw

Each worker is `python -m mpl_tf.main --strategy=multi_worker <args>` with a
TF_CONFIG naming all workers on 127.0.0.1 (free ports picked here). Worker 0
is the chief: it writes checkpoints, logs and the export, and its console
(progress, evaluations, results, warnings) is shown here as it runs. Every
worker's output is kept in <log_dir>/worker_<i>.log, by default under the
run's --output_dir (given on the command line or in a flagfile). Exits with
the first non-zero worker status.

On real hosts, start the same command on every host with TF_CONFIG set to
{"cluster": {"worker": ["host0:port", "host1:port", ...]},
 "task": {"type": "worker", "index": <this host's index>}}
and an --output_dir every host can reach (e.g. a gs:// bucket or NFS).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _copy_lines(source, *sinks):
    for line in iter(source.readline, ""):
        for sink in sinks:
            sink.write(line)
            sink.flush()


def launch(num_workers, mpl_args, log_dir, timeout=None, show_chief=False):
    """Start the workers and wait; returns their exit codes."""
    os.makedirs(log_dir, exist_ok=True)
    workers = [f"127.0.0.1:{p}" for p in free_ports(num_workers)]
    procs, copiers = [], []
    for i in range(num_workers):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers},
                                       "task": {"type": "worker", "index": i}})
        log = open(os.path.join(log_dir, f"worker_{i}.log"), "w",
                   encoding="utf-8")
        shown = show_chief and i == 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpl_tf.main", "--strategy=multi_worker",
             *mpl_args], env=env, stderr=subprocess.STDOUT, text=True,
            stdout=subprocess.PIPE if shown else log)
        if shown:
            copiers.append(threading.Thread(
                target=_copy_lines, args=(proc.stdout, log, sys.stdout),
                daemon=True))
            copiers[-1].start()
        procs.append((proc, log))
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other, _ in procs:
                other.kill()
            codes.append(-9)
    for copier in copiers:
        copier.join(timeout=10)
    for _, log in procs:
        log.close()
    return codes


def output_dir(mpl_args):
    """The run's --output_dir: on the command line, or in a flagfile (the
    last one given wins, as absl reads them)."""
    found = None
    for arg in mpl_args:
        if arg.startswith("--output_dir="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("--flagfile="):
            found = _from_flagfile(arg.split("=", 1)[1]) or found
    return found


def _from_flagfile(path):
    if not os.path.isfile(path):
        return None
    found = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith(("--output_dir=", "--flagfile=")):
                found = output_dir([line]) or found
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--log_dir", default=None,
                        help="default: <output_dir>/worker_logs")
    parser.add_argument("mpl_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    mpl_args = [a for a in args.mpl_args if a != "--"]
    log_dir = args.log_dir or os.path.join(output_dir(mpl_args) or "runs",
                                           "worker_logs")
    codes = launch(args.num_workers, mpl_args, log_dir, show_chief=True)
    print(f"worker exit codes: {codes}; every worker's output is in "
          f"{log_dir}")
    sys.exit(next((c for c in codes if c), 0))


if __name__ == "__main__":
    main()
