"""Shared by the tuned references: the data as whole tensors, prepared once, and the book's models.

The binary files hold each image as 3072 bytes in channel-major order, which is the layout
ToTensor() produces, so one reshape gives the [N, 3072] view the MLP consumes; normalizing it with the
book's constants gives the same values as the book's ToTensor() + Normalize() per image."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

MEAN = (0.4915, 0.4823, 0.4468)
STD = (0.2470, 0.2435, 0.2616)


def load_normalized(root, train=True, all_classes=False):
    """(images float32 [N, 3072] normalized, labels int64 [N]) for cifar2 (airplane -> 0,
    bird -> 1, in file order) or, with all_classes, all ten classes."""
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = torch.from_numpy(np.concatenate([np.fromfile(os.path.join(root, f), dtype=np.uint8).reshape(-1, 3073)
                                           for f in files]))
    labels = raw[:, 0].long()
    if not all_classes:
        keep = (labels == 0) | (labels == 2)
        raw, labels = raw[keep], (labels[keep] == 2).long()
    x = raw[:, 1:].float().div_(255).view(-1, 3, 1024)
    x.sub_(torch.tensor(MEAN).view(1, 3, 1)).div_(torch.tensor(STD).view(1, 3, 1))
    return x.view(-1, 3072).contiguous(), labels.contiguous()


class ToChannelsLast(nn.Module):
    """Copies a [B, C, H, W] batch into channels-last (NHWC) memory order; the values and the logical
    shape stay as they are."""

    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last)


def make_model(name, n_out, channels_last=False):
    """The book's models and their losses: the two MLPs of chapter 7, and the chapter-8 convnets of
    tools/book_models.py, which take the same [B, 3072] rows (unflattened to [B, 3, 32, 32] first).
    channels_last (convnets only): the convolution weights and each batch in channels-last memory
    order, PyTorch's documented speed-up for convolutions on the CPU; the book's code is NCHW."""
    if name.startswith("net"):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
        import book_models
        layers = [nn.Unflatten(1, (3, 32, 32))] + ([ToChannelsLast()] if channels_last else [])
        model = nn.Sequential(*layers, book_models.build(name, 32, 10, n_out))
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model, nn.CrossEntropyLoss()
    if name == "book-small":
        return (nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, n_out), nn.LogSoftmax(dim=1)),
                nn.NLLLoss())
    return (nn.Sequential(nn.Linear(3072, 1024), nn.Tanh(), nn.Linear(1024, 512), nn.Tanh(),
                          nn.Linear(512, 128), nn.Tanh(), nn.Linear(128, n_out)),
            nn.CrossEntropyLoss())
