"""Launch N mpl_tf workers on this machine under MultiWorkerMirroredStrategy.

    python scripts/launch_local_workers.py --num_workers=2 -- \
        --flagfile=flags/digits_50_mpl.cfg --output_dir=runs/mw

Each worker is `python -m mpl_tf.main --strategy=multi_worker <args>` with a
TF_CONFIG naming all workers on 127.0.0.1 (free ports picked here). Worker 0
is the chief: it writes checkpoints, logs and the export. Logs go to
<log_dir>/worker_<i>.log. Exits with the first non-zero worker status.

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


def launch(num_workers, mpl_args, log_dir, timeout=None):
    os.makedirs(log_dir, exist_ok=True)
    workers = [f"127.0.0.1:{p}" for p in free_ports(num_workers)]
    procs = []
    for i in range(num_workers):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers},
                                       "task": {"type": "worker", "index": i}})
        log = open(os.path.join(log_dir, f"worker_{i}.log"), "w",
                   encoding="utf-8")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "mpl_tf.main", "--strategy=multi_worker",
             *mpl_args], env=env, stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other, _ in procs:
                other.kill()
            codes.append(-9)
        log.close()
    return codes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--log_dir", default="runs/worker_logs")
    parser.add_argument("mpl_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    mpl_args = [a for a in args.mpl_args if a != "--"]
    codes = launch(args.num_workers, mpl_args, args.log_dir)
    print(f"worker exit codes: {codes}; logs in {args.log_dir}")
    sys.exit(next((c for c in codes if c), 0))


if __name__ == "__main__":
    main()
