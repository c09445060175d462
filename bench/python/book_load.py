"""(a) The book's way to load CIFAR-10 and build the normalized cifar2 list. Prints one JSON line."""
import json
import sys
import time

import torch
from torchvision import transforms

from book_common import BinaryCIFAR10

root = sys.argv[1]
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
t0 = time.perf_counter()
cifar10 = BinaryCIFAR10(root, train=True, transform=transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616))]))
read_s = time.perf_counter() - t0
label_map = {0: 0, 2: 1}
class_names = ['airplane', 'bird']
cifar2 = [(img, label_map[label]) for img, label in cifar10 if label in [0, 2]]
total = time.perf_counter() - t0
print(json.dumps({"mode": "load", "read_seconds": read_s, "seconds": total, "images": len(cifar2),
                  "checksum": float(sum(img.sum() for img, _ in cifar2))}))
