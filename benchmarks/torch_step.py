"""kekmodel/MPL-pytorch's training step, restated and timed: the yardstick
for step_time.py.

    python benchmarks/torch_step.py [--batch 16 --mu 7 --steps 10 --warmup 3]
    python benchmarks/torch_step.py --mode=uda     # the teacher's UDA step alone
    python benchmarks/torch_step.py --serve        # one step per request

It needs PyTorch (`pip install torch`), which mpl_tf does not depend on, so
step_time.py runs it in a child process (--torch_python) that steps on
request (--serve), its steps interleaved with ours, and prints its row
beside ours. Prints one JSON line: per-step seconds and the process's peak
RSS (/proc VmHWM).

What the port (kekmodel/MPL-pytorch at 7dc6297, `models.py` and the body of
`train_loop` in `main.py`) does, and what this file therefore does, pass for
pass, with the hyper-parameters of its README's CIFAR-10-4K command (fp32:
its `--amp` is for CUDA):

- Network: WRN-28-k, NCHW. A 3x3 stem conv to 16 channels; three groups of
  four blocks (16k, 32k, 64k channels; strides 1, 2, 2); a final batch norm
  and leaky ReLU, global average pool, dropout 0.2, a linear layer. Batch
  norms have momentum 0.001 and PyTorch's default eps; every leaky ReLU
  (slope 0.1) works in place. A block whose input and output widths match
  is pre-activation: BN, act, conv3x3, BN, act, conv3x3, plus its input.
  The first block of the first group activates its input (BN, act) and
  feeds that to both its conv3x3 and its 1x1 shortcut conv. The first block
  of the second and third groups computes BN and act of its input, then
  does not use them: its conv3x3 and its 1x1 shortcut both take the raw
  input (the port's structure, kept because the yardstick must do its
  work). Initialisation: Kaiming-normal (fan out) convs, BN 1/0,
  Xavier-normal linear with zero bias.
- Optimizers: SGD, momentum 0.9, Nesterov, lr 0.05, two parameter groups
  each: weight decay 5e-4 on parameters whose name has no "bn", none on the
  batch norms'. A LambdaLR schedule (wait, linear warm-up, cosine) per
  optimizer, stepped every step.
- Teacher: one forward on cat(x_l, x_uw, x_us); labeled loss with label
  smoothing 0.15; UDA loss: softmax(z_uw / 0.7) (detached) against
  log_softmax(z_us), masked where its max >= 0.6; weight 8 * min(1,
  (step+1) / uda_steps).
- Student: one forward on cat(x_l, x_us); CE_old = plain CE of its labeled
  logits (detached); its loss: smoothed CE against the argmax of the
  teacher's weak-view distribution; backward, clip_grad_norm_ (1e9), step,
  scheduler step, EMA update (decay 0.995: parameters averaged, buffers
  copied). Then a no_grad forward on x_l: CE_new.
- Teacher update: dot = CE_new - CE_old (the port's sign); t_loss = UDA
  loss + dot * CE(z_us, argmax z_us); backward, clip_grad_norm_, step,
  scheduler step; both networks' zero_grad.
- Six `.item()` reads per step (student loss, teacher loss, its labeled,
  UDA and MPL parts, the mask's mean), as the port's meters do.

How it was checked: `benchmarks/port_check.md` lists the comparison run
against the port's own `models.py` and step (fetched outside this project,
not copied here): parameter counts, the module names the decay groups
depend on, step time and peak memory side by side.
"""

import argparse
import copy
import json
import math
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

SLOPE = 0.1
BN_MOMENTUM = 0.001
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
LABEL_SMOOTHING, TEMPERATURE, THRESHOLD = 0.15, 0.7, 0.6
UDA_WEIGHT, UDA_STEPS = 8.0, 5000
WARMUP_STEPS, STUDENT_WAIT_STEPS, TOTAL_STEPS = 5000, 3000, 300000
EMA_DECAY, GRAD_CLIP, DROPOUT = 0.995, 1e9, 0.2


class Block(nn.Module):
    """One residual block of the port's WRN (see the module docstring)."""

    def __init__(self, cin, cout, stride, activate_input):
        super().__init__()
        self.same_width = cin == cout
        self.activate_input = activate_input
        self.bn1 = nn.BatchNorm2d(cin, momentum=BN_MOMENTUM)
        self.act1 = nn.LeakyReLU(SLOPE, inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.act2 = nn.LeakyReLU(SLOPE, inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (None if self.same_width
                         else nn.Conv2d(cin, cout, 1, stride, 0, bias=False))

    def forward(self, x):
        if self.same_width:
            h = self.act1(self.bn1(x))
            h = self.conv1(h)
        elif self.activate_input:
            x = self.act1(self.bn1(x))
            h = self.conv1(x)
        else:
            self.act1(self.bn1(x))    # computed and dropped, as in the port
            h = self.conv1(x)
        h = self.conv2(self.act2(self.bn2(h)))
        return torch.add(x if self.same_width else self.shortcut(x), h)


class WRN28(nn.Module):

    def __init__(self, k=2, num_classes=10):
        super().__init__()
        widths = (16 * k, 32 * k, 64 * k)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        groups, cin = [], 16
        for g, width in enumerate(widths):
            groups.append(nn.Sequential(*[
                Block(cin if i == 0 else width, width,
                      (1, 2, 2)[g] if i == 0 else 1, g == 0)
                for i in range(4)]))
            cin = width
        self.block1, self.block2, self.block3 = groups
        self.bn1 = nn.BatchNorm2d(cin, momentum=BN_MOMENTUM)
        self.act = nn.LeakyReLU(SLOPE, inplace=True)
        self.drop = nn.Dropout(DROPOUT)
        self.fc = nn.Linear(cin, num_classes)
        self.width = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                        nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.0)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.adaptive_avg_pool2d(self.act(self.bn1(x)), 1)
        return self.fc(self.drop(x.view(-1, self.width)))


class EMA:
    """The port's student average: parameters averaged, buffers copied."""

    def __init__(self, model, decay):
        self.module = copy.deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.module.parameters(), model.parameters()):
            e.copy_(self.decay * e + (1.0 - self.decay) * m)
        for e, m in zip(self.module.buffers(), model.buffers()):
            e.copy_(m)


def smoothed_ce(logits, labels):
    # The port's criterion: PyTorch's own cross-entropy with smoothing.
    return F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)


def sgd(model):
    decay = [p for n, p in model.named_parameters() if "bn" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bn" in n]
    return torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=LR, momentum=MOMENTUM, nesterov=True)


def schedule(optimizer, wait=0):
    def factor(step):
        if step < wait:
            return 0.0
        if step < WARMUP_STEPS + wait:
            return step / max(1, WARMUP_STEPS + wait)
        progress = (step - WARMUP_STEPS - wait) / max(
            1, TOTAL_STEPS - WARMUP_STEPS - wait)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def teacher_uda(teacher, x_l, y_l, x_uw, x_us, step):
    """The teacher's forward and UDA loss. -> (loss, parts, z_uw, z_us)"""
    b = x_l.shape[0]
    logits = teacher(torch.cat((x_l, x_uw, x_us)))
    z_l = logits[:b]
    z_uw, z_us = logits[b:].chunk(2)
    del logits
    loss_l = smoothed_ce(z_l, y_l)
    soft = torch.softmax(z_uw.detach() / TEMPERATURE, -1)
    top, hard = torch.max(soft, -1)
    mask = top.ge(THRESHOLD).float()
    loss_u = torch.mean(-(soft * torch.log_softmax(z_us, -1)).sum(-1) * mask)
    weight = UDA_WEIGHT * min(1.0, (step + 1) / UDA_STEPS)
    return loss_l + weight * loss_u, (loss_l, loss_u, mask, hard), z_us


def update(model, optimizer, scheduler, loss):
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    scheduler.step()


class PortStep:
    """The port's MPL step (mode "mpl") or the teacher's UDA step alone."""

    def __init__(self, width, mode):
        torch.manual_seed(0)
        self.mode = mode
        self.teacher = WRN28(width)
        self.t_opt = sgd(self.teacher)
        self.t_sched = schedule(self.t_opt)
        if mode == "mpl":
            self.student = WRN28(width)
            self.ema = EMA(self.student, EMA_DECAY)
            self.s_opt = sgd(self.student)
            self.s_sched = schedule(self.s_opt, STUDENT_WAIT_STEPS)
        self.step = 0

    def __call__(self, x_l, y_l, x_uw, x_us):
        self.teacher.train()
        t_uda, (t_l, t_u, mask, hard), z_us = teacher_uda(
            self.teacher, x_l, y_l, x_uw, x_us, self.step)
        if self.mode == "uda":
            update(self.teacher, self.t_opt, self.t_sched, t_uda)
            self.teacher.zero_grad()
            values = [t_uda.item(), t_l.item(), t_u.item(), mask.mean().item()]
            self.step += 1
            return values
        b = x_l.shape[0]
        self.student.train()
        s_logits = self.student(torch.cat((x_l, x_us)))
        s_l, s_us = s_logits[:b], s_logits[b:]
        del s_logits
        ce_old = F.cross_entropy(s_l.detach(), y_l)
        s_loss = smoothed_ce(s_us, hard)
        update(self.student, self.s_opt, self.s_sched, s_loss)
        self.ema.update(self.student)
        with torch.no_grad():
            ce_new = F.cross_entropy(self.student(x_l).detach(), y_l)
        dot = ce_new - ce_old
        _, hard_s = torch.max(z_us.detach(), -1)
        t_mpl = dot * F.cross_entropy(z_us, hard_s)
        t_loss = t_uda + t_mpl
        update(self.teacher, self.t_opt, self.t_sched, t_loss)
        self.teacher.zero_grad()
        self.student.zero_grad()
        values = [s_loss.item(), t_loss.item(), t_l.item(), t_u.item(),
                  t_mpl.item(), mask.mean().item()]
        self.step += 1
        return values


def peak_rss_bytes():
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("mpl", "uda"), default="mpl")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mu", type=int, default=7)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--width", type=int, default=2, help="WRN-28-k")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--serve", action="store_true",
                   help="step on request, for timing interleaved with "
                        "another process: print 'ready', then for each "
                        "'step' line on stdin run one step and print its "
                        "seconds; 'quit' ends with the JSON line "
                        "(--steps/--warmup unused)")
    args = p.parse_args()
    step = PortStep(args.width, args.mode)
    size, b, u = args.image_size, args.batch, args.batch * args.mu
    x_l = torch.rand(b, 3, size, size)
    y_l = torch.randint(0, 10, (b,))
    x_uw, x_us = torch.rand(u, 3, size, size), torch.rand(u, 3, size, size)

    def timed_step():
        t0 = time.perf_counter()
        step(x_l, y_l, x_uw, x_us)
        return time.perf_counter() - t0

    times = []
    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "step":
                break
            print(timed_step(), flush=True)
    else:
        for i in range(args.warmup + args.steps):
            seconds = timed_step()
            if i >= args.warmup:
                times.append(seconds)
    params = sum(p.numel() for p in step.teacher.parameters())
    print(json.dumps({"torch": torch.__version__, "mode": args.mode,
                      "threads": torch.get_num_threads(), "params": params,
                      "times": times, "peak_rss": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
