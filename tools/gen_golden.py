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


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    basic_transforms()
    losses()
    print("wrote", OUT)
