"""Mixup and cutmix with given draws, as torchvision's classification reference (references/
classification/transforms.py, RandomMixup and RandomCutmix of torchvision 0.14) computes them
(tests/golden/data/mixing.pt).

The reference draws lambda and the box centre itself; here they are given, and the arithmetic after the
draw is the reference's: roll the batch by one, mix images and one-hot targets (mixup), or paste the
rolled batch's box of half-size int(r * W) x int(r * H), r = sqrt(1 - lambda) / 2, clipped to the image,
and mix the targets by the area outside it (cutmix). Also F.cross_entropy on the mixed (probability)
targets with label smoothing, and its gradient.
"""
import math

import torch
import torch.nn.functional as F


def mixup(batch, target, lam):
    batch, target = batch.clone(), target.clone()
    batch_rolled, target_rolled = batch.roll(1, 0), target.roll(1, 0)
    batch_rolled.mul_(1.0 - lam)
    batch.mul_(lam).add_(batch_rolled)
    target_rolled.mul_(1.0 - lam)
    target.mul_(lam).add_(target_rolled)
    return batch, target


def cutmix(batch, target, lam, r_x, r_y):
    batch, target = batch.clone(), target.clone()
    batch_rolled, target_rolled = batch.roll(1, 0), target.roll(1, 0)
    H, W = batch.shape[-2:]
    r = 0.5 * math.sqrt(1.0 - lam)
    r_w_half, r_h_half = int(r * W), int(r * H)
    x1 = int(torch.clamp(torch.tensor(r_x - r_w_half), min=0))
    y1 = int(torch.clamp(torch.tensor(r_y - r_h_half), min=0))
    x2 = int(torch.clamp(torch.tensor(r_x + r_w_half), max=W))
    y2 = int(torch.clamp(torch.tensor(r_y + r_h_half), max=H))
    batch[:, :, y1:y2, x1:x2] = batch_rolled[:, :, y1:y2, x1:x2]
    lam = float(1.0 - (x2 - x1) * (y2 - y1) / (W * H))
    target_rolled.mul_(1.0 - lam)
    target.mul_(lam).add_(target_rolled)
    return batch, target, lam


def generate(save):
    g = torch.Generator().manual_seed(21)
    images = torch.randn(4, 3, 8, 10, generator=g)
    labels = torch.tensor([0, 2, 1, 2])
    onehot = F.one_hot(labels, 3).float()
    out = {"images": images, "labels": labels}
    out["mixup/images"], out["mixup/targets"] = mixup(images, onehot, 0.3)
    for name, (lam, rx, ry) in {"cutmix": (0.6, 5, 2), "cutmix_edge": (0.2, 0, 7)}.items():
        b, t, kept = cutmix(images, onehot, lam, rx, ry)
        out[f"{name}/images"], out[f"{name}/targets"] = b, t
        out[f"{name}/lambda"] = torch.tensor([kept], dtype=torch.float64)
    logits = torch.randn(4, 3, generator=g).requires_grad_(True)
    loss = F.cross_entropy(logits, out["mixup/targets"], label_smoothing=0.1)
    loss.backward()
    out["logits"], out["soft_loss"], out["soft_grad"] = logits.detach(), loss.detach().reshape(1), logits.grad
    save("mixing.pt", out)
