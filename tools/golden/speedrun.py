"""speedrun.pt: the speedrun network and recipe of bench/python/speedrun.py (the PyTorch reference) on
8 seeded images: the whitening filters, logits in train and eval mode, and the parameters after two
steps of the recipe's optimizer (Nesterov SGD, two groups, decoupled rate and decay, label smoothing,
the triangular schedule of a 10-step run). Weights are set from a formula both sides compute."""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "python"))
import speedrun as sr  # noqa: E402


def formula_weights(net):
    """Every convolution and the head: 0.05 * sin(0.37 * i + k) (i the flat index, k the tensor's
    position among them); the whitening bias 0.01 * cos(i). Batch norms keep their start values."""
    k = 0
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("conv1.weight") or name.endswith("conv2.weight") or name == "head.weight":
                i = torch.arange(p.numel(), dtype=torch.float64)
                p.copy_((0.05 * torch.sin(0.37 * i + k)).view_as(p))
                k += 1
            elif name == "whiten.bias":
                p.copy_(0.01 * torch.cos(torch.arange(p.numel(), dtype=torch.float64)))


def generate(save):
    torch.manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    net = sr.Net()
    formula_weights(net)
    sr.whiten_init(net, images)
    out = {"images": images, "labels": labels, "whiten": net.whiten.weight.detach().clone()}
    net.eval()
    with torch.no_grad():
        out["logits_eval"] = net(images)
    net.train()
    kilostep = 1024 * (1 + 1 / (1 - sr.MOMENTUM))
    lr, wd = sr.LR / kilostep, sr.WEIGHT_DECAY * 8 / kilostep  # a batch of 8
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    norm = [p for k, p in named if "norm" in k]
    other = [p for k, p in named if "norm" not in k]
    opt = torch.optim.SGD([dict(params=norm, lr=lr * sr.BIAS_SCALER, weight_decay=wd / (lr * sr.BIAS_SCALER)),
                           dict(params=other, lr=lr, weight_decay=wd / lr)], momentum=sr.MOMENTUM, nesterov=True)
    base = [g["lr"] for g in opt.param_groups]
    for step in range(2):
        for g, b in zip(opt.param_groups, base):
            g["lr"] = b * sr.schedule(step, 10)
        logits = net(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=sr.LABEL_SMOOTHING, reduction="sum")
        if step == 0:
            out["logits_train"] = logits.detach().clone()
            out["loss"] = loss.detach().reshape(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            for k, p in named:
                out["grad." + k] = p.grad.detach().clone() if p.numel() <= 1024 else p.grad.detach().flatten()[:256].clone()
        opt.step()
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            out["after." + k] = v.detach().clone() if v.numel() <= 1024 else v.detach().flatten()[:256].clone()
            out["sum." + k] = v.detach().double().sum().reshape(1)
    save("speedrun.pt", out)
