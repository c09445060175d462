"""(h) The per-sample augmentation path: a torch DataLoader over the book's cifar2 (PIL images), each
sample through torchvision's RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor() and
Normalize(), batch 64, shuffled. Usage: augment_loader.py DATA_DIR WORKERS PASSES [THREADS].
Prints one JSON line with images per second for each pass (workers stay alive between passes)."""
import json
import sys
import time

import torch
from torchvision import transforms

from book_common import BinaryCIFAR10

root, workers, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
torch.manual_seed(123)
augment = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616))])
cifar10 = BinaryCIFAR10(root, train=True, transform=None)
keep = [i for i, label in enumerate(cifar10.targets) if label in (0, 2)]


class Cifar2(torch.utils.data.Dataset):
    def __len__(self):
        return len(keep)

    def __getitem__(self, i):
        img, label = cifar10[keep[i]]
        return augment(img), {0: 0, 2: 1}[label]


loader = torch.utils.data.DataLoader(Cifar2(), batch_size=64, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
rates = []
checksum = 0.0
for _ in range(passes):
    t0 = time.perf_counter()
    n = 0
    for imgs, labels in loader:
        n += imgs.shape[0]
        checksum += float(imgs[0, 0, 0, 0])
    rates.append(n / (time.perf_counter() - t0))
print(json.dumps({"mode": "augment", "workers": workers, "images_per_second": rates, "checksum": checksum}))
