"""The book's chapter 7 code path, on the official binary CIFAR-10 files.

torchvision's CIFAR10 class reads the Python pickle release; these files are the binary release,
so BinaryCIFAR10 below reads them the way torchvision's class holds data (a uint8 HWC array) and
returns PIL images through the transform, as torchvision does.
"""
import os

import numpy as np
import torch
from PIL import Image


class BinaryCIFAR10(torch.utils.data.Dataset):
    def __init__(self, root, train=True, transform=None):
        files = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
        raw = np.concatenate([np.fromfile(os.path.join(root, f), dtype=np.uint8).reshape(-1, 3073)
                              for f in files])
        self.targets = raw[:, 0].astype(np.int64).tolist()
        self.data = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # HWC like torchvision
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index])
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]
