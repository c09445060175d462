"""The CIFAR-10 speedrun recipe (airbench94's method, arXiv 2404.00498) for Debian's PyTorch on the CPU:
the reference birdplane's `speedrun` preset and `birdplane experiment speedrun` are measured against.

Same network, initialisation, optimizer, schedule, augmentation, weight averaging and test-time
augmentation as birdplane's src/train/speedrun.cpp; written for the CPU (no torch.compile): float32 or
bfloat16 autocast, NCHW or channels-last, the threads birdplane uses.

  speedrun.py --data DIR --mode run   [--seed S] [--precision bf16] [--layout cl] [--json]
      the whole recipe: whitening init, 9.9 epochs, TTA evaluation; accuracy and seconds
  speedrun.py --data DIR --mode epochs --epochs-timed N [...]
      N training epochs of the recipe (no evaluation), each timed: the bench's per-epoch workload
  speedrun.py --data DIR --mode steps --steps N [...]
      N training steps at batch 1024 (after 2 untimed ones), each timed
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The recipe's constants (airbench94): rates and decay per 1024 images, decoupled from momentum.
BATCH = 1024
EPOCHS = 9.9
LR = 11.5
MOMENTUM = 0.85
WEIGHT_DECAY = 0.0153
BIAS_SCALER = 64.0
LABEL_SMOOTHING = 0.2
WHITEN_BIAS_EPOCHS = 3
WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.6  # the running statistics keep 0.6 of themselves: PyTorch's momentum 0.4
SCALE = 1 / 9
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def load(root, train):
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(root, f), dtype=np.uint8).reshape(-1, 3073) for f in files])
    raw = torch.from_numpy(raw)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).float().div_(255)
    images = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return images.contiguous(), raw[:, 0].long().contiguous()


class Norm(nn.BatchNorm2d):
    """Batch norm with the scale fixed at 1 (not trained) and eps 1e-12."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-12, momentum=1 - BN_MOMENTUM)
        self.weight.requires_grad_(False)


def conv3x3(cin, cout):
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])  # the first cin filters pass their input through
    return conv


class Group(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.norm1 = conv3x3(cin, cout), Norm(cout)
        self.conv2, self.norm2 = conv3x3(cout, cout), Norm(cout)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        with torch.no_grad():
            self.whiten.bias.zero_()
        self.group1 = Group(24, WIDTHS[0])
        self.group2 = Group(WIDTHS[0], WIDTHS[1])
        self.group3 = Group(WIDTHS[1], WIDTHS[2])
        self.head = nn.Linear(WIDTHS[2], 10, bias=False)

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.group3(self.group2(self.group1(x)))
        x = F.max_pool2d(x, 3).flatten(1)
        return self.head(x) * SCALE


def whiten_init(net, images, eps=5e-4):
    """The 2x2 patches' covariance eigenvectors, each scaled by 1/sqrt(eigenvalue + eps), and their
    negatives: 24 filters that whiten the input."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # [N, 3, 31, 31, 2, 2]
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    cov = patches.T @ patches / patches.shape[0]
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0), vectors.T.flip(0)  # largest first, one eigenvector a row
    filters = (vectors / torch.sqrt(values + eps).view(-1, 1)).reshape(12, 3, 2, 2).float()
    with torch.no_grad():
        net.whiten.weight.copy_(torch.cat([filters, -filters]))


def schedule(step, total):
    """The triangular learning-rate factor: 0.2 -> 1 over the first 23% of steps, then down to 0.07."""
    up = int(total * 0.23)
    if step < up:
        return 0.2 + 0.8 * step / up
    return 1.0 - 0.93 * (step - up) / (total - up)


class Averager:
    """Lookahead-style averaging: every 5 steps the average moves toward the weights by (1 - decay) and
    the weights are set to it."""

    def __init__(self, net):
        self.avg = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    def update(self, net, decay):
        with torch.no_grad():
            for k, v in net.state_dict().items():
                if k in self.avg:
                    self.avg[k].lerp_(v, 1 - decay)
                    v.copy_(self.avg[k])


def random_translate(padded, generator):
    """Each image of [N, C, 36, 36] cropped to 32x32 at its own offset (0..4 in each direction)."""
    n = padded.shape[0]
    shifts = torch.randint(0, 5, (n, 2), generator=generator)
    out = torch.empty(n, padded.shape[1], 32, 32, dtype=padded.dtype)
    for dy in range(5):
        for dx in range(5):
            pick = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1)
            if len(pick):
                out[pick] = padded[pick, :, dy:dy + 32, dx:dx + 32]
    return out


class Recipe:
    def __init__(self, args):
        self.args = args
        self.bf16 = args.precision == "bf16"
        self.cl = args.layout == "cl"
        self.gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)
        self.net = Net()
        if self.cl:
            self.net = self.net.to(memory_format=torch.channels_last)

    def prepare(self, images):
        """First-epoch work: a random mirror of each image, then 2-pixel reflect padding."""
        flip = torch.rand(len(images), generator=self.gen) < 0.5
        flipped = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        self.padded = F.pad(flipped, (2, 2, 2, 2), mode="reflect")

    def epoch_batches(self, epoch):
        images = random_translate(self.padded, self.gen)
        if epoch % 2 == 1:  # alternating flip: every other epoch, every image mirrored
            images = images.flip(-1)
        order = torch.randperm(len(images), generator=self.gen)
        for i in range(len(images) // BATCH):
            pick = order[i * BATCH:(i + 1) * BATCH]
            x = images[pick]
            if self.cl:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[pick]

    def setup_training(self, train_images, train_labels):
        self.labels = train_labels
        whiten_init(self.net, train_images[:5000])
        self.steps_per_epoch = len(train_images) // BATCH
        self.total = math.ceil(self.steps_per_epoch * EPOCHS)
        kilostep = BATCH * (1 + 1 / (1 - MOMENTUM))
        lr = LR / kilostep
        wd = WEIGHT_DECAY * BATCH / kilostep
        named = [(k, p) for k, p in self.net.named_parameters() if p.requires_grad]
        norm = [p for k, p in named if "norm" in k]
        other = [p for k, p in named if "norm" not in k]
        self.opt = torch.optim.SGD([dict(params=norm, lr=lr * BIAS_SCALER, weight_decay=wd / (lr * BIAS_SCALER)),
                                    dict(params=other, lr=lr, weight_decay=wd / lr)],
                                   momentum=MOMENTUM, nesterov=True)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.averager = Averager(self.net)
        self.step = 0
        self.prepare(train_images)

    def train_step(self, x, y):
        """Forward (autocast when bf16), the summed label-smoothed loss, backward, the optimizer step."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=LABEL_SMOOTHING, reduction="sum")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return out, loss

    def train_epoch(self, epoch):
        self.net.whiten.bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        self.net.train()
        last = None
        for x, y in self.epoch_batches(epoch):
            for g, base in zip(self.opt.param_groups, self.base_lrs):
                g["lr"] = base * schedule(self.step, self.total)
            out, loss = self.train_step(x, y)
            self.step += 1
            if self.step % 5 == 0:
                self.averager.update(self.net, 0.95 ** 5 * (self.step / self.total) ** 3)
            last = (loss.item() / len(y), (out.argmax(1) == y).float().mean().item())
            if self.step >= self.total:
                self.averager.update(self.net, 1.0)
                break
        return last

    @torch.no_grad()
    def logits(self, images, tta):
        self.net.eval()
        out = []
        for x in images.split(2000):
            if self.cl:
                x = x.contiguous(memory_format=torch.channels_last)

            def run(v):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    return self.net(v).float()

            def mirrored(v):
                return 0.5 * run(v) + 0.5 * run(v.flip(-1))

            if tta == 0:
                out.append(run(x))
            elif tta == 1:
                out.append(mirrored(x))
            else:
                p = F.pad(x, (1, 1, 1, 1), mode="reflect")
                shifted = 0.5 * mirrored(p[:, :, 0:32, 0:32]) + 0.5 * mirrored(p[:, :, 2:34, 2:34])
                out.append(0.5 * mirrored(x) + 0.5 * shifted)
        return torch.cat(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--mode", choices=["run", "epochs", "steps"], default="run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--layout", choices=["nchw", "cl"], default="cl")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    ap.add_argument("--epochs-timed", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train_x, train_y = load(args.data, True)
    r = Recipe(args)
    out = {"precision": args.precision, "layout": args.layout, "threads": torch.get_num_threads(),
           "seed": args.seed, "torch": torch.__version__}
    if args.mode == "steps":
        r.setup_training(train_x, train_y)
        times = []
        batches = r.epoch_batches(0)
        for i in range(args.steps + 2):
            x, y = next(batches)
            t0 = time.perf_counter()
            r.train_step(x, y)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        out["step_seconds"] = times
        out["median"] = sorted(times)[len(times) // 2]
    elif args.mode == "epochs":
        r.setup_training(train_x, train_y)
        times = []
        for e in range(args.epochs_timed):
            t0 = time.perf_counter()
            r.train_epoch(e)
            times.append(time.perf_counter() - t0)
        out["epoch_seconds"] = times
        out["steps_per_epoch"] = r.steps_per_epoch
    else:
        test_x, test_y = load(args.data, False)
        t0 = time.perf_counter()
        r.setup_training(train_x, train_y)
        epochs = []
        for e in range(math.ceil(EPOCHS)):
            te = time.perf_counter()
            loss, acc = r.train_epoch(e)
            seconds = time.perf_counter() - te
            val = (r.logits(test_x, 0).argmax(1) == test_y).float().mean().item()
            epochs.append({"epoch": e + 1, "train_loss": loss, "train_acc": acc, "val_acc": val, "seconds": seconds})
            if not args.json:
                print(f"epoch {e + 1:2d}  loss {loss:.4f}  train acc {acc:.4f}  val acc {val:.4f}  {seconds:.1f} s",
                      flush=True)
        train_seconds = sum(x["seconds"] for x in epochs)
        te = time.perf_counter()
        tta = (r.logits(test_x, 2).argmax(1) == test_y).float().mean().item()
        tta_seconds = time.perf_counter() - te
        out.update({"epochs": epochs, "tta_val_acc": tta, "train_seconds": train_seconds,
                    "tta_seconds": tta_seconds, "wall_seconds": time.perf_counter() - t0})
        if not args.json:
            print(f"TTA validation accuracy {tta:.4f}; training {train_seconds:.1f} s, TTA eval {tta_seconds:.1f} s")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
