#!/usr/bin/python3
"""Writes the golden files in tests/golden/data/ from Debian's torch and torchvision.

Run with Debian's interpreter (it has torch): /usr/bin/python3 tools/gen_golden.py
Each file is a plain dict of tensors saved with torch.save (C++ reads it with torch::pickle_load).
The files are generated: do not edit them by hand, rerun this script.
"""
import os

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "data")


def save(name, tensors):
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    tensors["_generated_by"] = torch.tensor([ord(c) for c in
                                             f"tools/gen_golden.py torch {torch.__version__} "
                                             f"torchvision {torchvision.__version__}"], dtype=torch.uint8)
    torch.save(tensors, os.path.join(OUT, name))


def basic_transforms():
    """ToTensor on a PIL image (the book's path), Normalize, Compose, on 4 random 32x32 images."""
    rng = np.random.default_rng(123)
    hwc = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    mean, std = (0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616)
    to_tensor = transforms.ToTensor()
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    tensors = torch.stack([to_tensor(Image.fromarray(img)) for img in hwc])
    normalized = torch.stack([pipeline(Image.fromarray(img)) for img in hwc])
    save("basic_transforms.pt", {
        "input_hwc": torch.from_numpy(hwc),
        "to_tensor": tensors,
        "normalized": normalized,
        "mean": torch.tensor(mean, dtype=torch.float64),
        "std": torch.tensor(std, dtype=torch.float64),
    })


def losses():
    """NLL on log_softmax, cross-entropy on logits, MSE on softmax vs one-hot, with gradients."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(16, 10, generator=g, dtype=torch.float32)
    target = torch.randint(0, 10, (16,), generator=g)
    out = {"logits": logits, "target": target}
    for name in ("nll", "ce", "mse"):
        x = logits.clone().requires_grad_(True)
        if name == "nll":
            loss = torch.nn.functional.nll_loss(torch.log_softmax(x, 1), target)
        elif name == "ce":
            loss = torch.nn.functional.cross_entropy(x, target)
        else:
            onehot = torch.nn.functional.one_hot(target, 10).float()
            loss = torch.nn.functional.mse_loss(torch.softmax(x, 1), onehot)
        loss.backward()
        out[name + "_loss"] = loss.detach().reshape(1)
        out[name + "_grad"] = x.grad
    save("losses.pt", out)


def geometry():
    """Constant pad, crop, flips, and RandomCrop / RandomHorizontalFlip parameters from a seed."""
    import torchvision.transforms.functional as F
    g = torch.Generator().manual_seed(11)
    imgs = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    padded = F.pad(imgs, [4], fill=0, padding_mode="constant")
    tops, lefts, flips = [], [], []
    torch.manual_seed(42)  # torchvision draws from the default generator
    crop = transforms.RandomCrop(32, padding=4)
    for i in range(4):
        t, l, _, _ = crop.get_params(padded[i], (32, 32))
        tops.append(t)
        lefts.append(l)
    torch.manual_seed(43)
    for i in range(4):
        flips.append(bool(torch.rand(1) < 0.5))
    cropped = torch.stack([F.crop(padded[i], tops[i], lefts[i], 32, 32) for i in range(4)])
    flipped = torch.stack([F.hflip(cropped[i]) if flips[i] else cropped[i] for i in range(4)])
    save("geometry.pt", {
        "images": imgs, "padded": padded, "tops": torch.tensor(tops), "lefts": torch.tensor(lefts),
        "flips": torch.tensor(flips), "cropped": cropped, "crop_then_flip": flipped,
        "hflip": F.hflip(imgs), "vflip": F.vflip(imgs),
        "pad_fill": F.pad(imgs[0], [1, 2, 3, 4], fill=7),
    })


def family_modules():
    """tools/golden/<family>.py modules: each has generate(save) and writes its own file(s)."""
    import importlib.util
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and not name.startswith("_"):
            spec = importlib.util.spec_from_file_location("golden_" + name[:-3], os.path.join(folder, name))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            yield module


if __name__ == "__main__":
    import sys
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])  # optional: family names to regenerate (e.g. color), "core" for this file's
    if not only or "core" in only:
        basic_transforms()
        losses()
        geometry()
    for module in family_modules():
        if not only or module.__name__[len("golden_"):] in only:
            module.generate(save)
    print("wrote", OUT)
