"""The MPL Taylor step in PyTorch, timed: the yardstick for step_time.py.

    python benchmarks/torch_step.py [--batch 16 --mu 7 --steps 10 --warmup 3]

It needs PyTorch (`pip install torch`), which mpl_tf does not depend on, so
step_time.py runs it in a child process (--torch_python) and prints its row
beside ours. It computes the same passes as kekmodel/MPL-pytorch's training
step, in the same order, in float32 with the port's NCHW layout: teacher
forward+backward on [x_l, x_weak, x_strong], student forward+backward on
[x_l, x_strong], student SGD update, student forward on x_l with the new
weights, teacher update. The network is our WRN-28-2 (mpl_tf/models/wrn.py)
written in PyTorch, so both frameworks do the same FLOPs. Prints one JSON
line: per-step seconds and the process's peak RSS (/proc VmHWM).
"""

import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

SLOPE = 0.2


class Block(nn.Module):
    """Pre-activation block: BN, leaky ReLU, conv3x3, BN, leaky ReLU, conv3x3."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=0.01, eps=1e-3)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = (nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
                     if stride != 1 or cin != cout else None)

    def forward(self, x):
        pre = F.leaky_relu(self.bn1(x), SLOPE)
        shortcut = x if self.proj is None else self.proj(pre)
        h = self.conv2(F.leaky_relu(self.bn2(self.conv1(pre)), SLOPE))
        return h + shortcut


class WRN28(nn.Module):

    def __init__(self, k=2, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16 * k, 3, 1, 1, bias=False)
        blocks, cin = [], 16 * k
        for group, width in enumerate((16 * k, 32 * k, 64 * k)):
            for i in range(4):
                blocks.append(Block(cin, width, 2 if group and not i else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin, momentum=0.01, eps=1e-3)
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.blocks(self.stem(x))), SLOPE)
        return self.fc(self.dropout(x.mean((2, 3))))


def sgd(model, lr):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9,
                           nesterov=True, weight_decay=5e-4)


def mpl_step(teacher, student, t_opt, s_opt, x_l, y_l, x_w, x_s, baseline):
    """One MPL Taylor step; returns the new feedback baseline."""
    b, u = x_l.shape[0], x_w.shape[0]
    t_logits = teacher(torch.cat([x_l, x_w, x_s]))
    t_l, t_w, t_s = torch.split(t_logits, [b, u, u])
    soft = torch.softmax(t_w.detach() / 0.7, dim=-1)
    mask = (soft.max(-1).values >= 0.6).float()
    t_uda = (-(soft * torch.log_softmax(t_s, -1)).sum(-1) * mask).mean()
    t_loss = F.cross_entropy(t_l, y_l) + t_uda
    labels = t_s.detach().argmax(-1)

    s_logits = student(torch.cat([x_l, x_s]))
    s_l, s_s = torch.split(s_logits, [b, u])
    ce_old = F.cross_entropy(s_l.detach(), y_l)
    s_opt.zero_grad()
    F.cross_entropy(s_s, labels, label_smoothing=0.15).backward()
    s_opt.step()
    with torch.no_grad():
        ce_new = F.cross_entropy(student(x_l), y_l)
    h = (ce_old - ce_new).item()
    baseline = 0.99 * baseline + 0.01 * h
    t_opt.zero_grad()
    (t_loss + (h - baseline) * F.cross_entropy(t_s, labels)).backward()
    t_opt.step()
    return baseline


def peak_rss_bytes():
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mu", type=int, default=7)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--width", type=int, default=2, help="WRN-28-k")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    teacher, student = WRN28(args.width), WRN28(args.width)
    t_opt, s_opt = sgd(teacher, 0.05), sgd(student, 0.05)
    size, b, u = args.image_size, args.batch, args.batch * args.mu
    x_l = torch.rand(b, 3, size, size)
    y_l = torch.randint(0, 10, (b,))
    x_w, x_s = torch.rand(u, 3, size, size), torch.rand(u, 3, size, size)
    baseline, times = 0.0, []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        baseline = mpl_step(teacher, student, t_opt, s_opt, x_l, y_l, x_w, x_s,
                            baseline)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__,
                      "threads": torch.get_num_threads(), "times": times,
                      "peak_rss": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
