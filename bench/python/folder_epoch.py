"""The Python reference for reading an image folder: the code a user writes with torchvision,
datasets.ImageFolder(TREE) with [Resize(R)] + ToTensor() + Normalize() per image and a shuffled
DataLoader (batch 64, N worker processes, a seeded generator), timed over whole epochs.
Usage: folder_epoch.py TREE --workers N [--resize 64] [--reps 3] [--batch-size 64] [--threads T]
(trees: bench/python/make_folder_trees.py).

Each repetition times what a user waits for: constructing the DataLoader plus one full epoch (the
first batch includes starting the workers, the end includes joining them, as they are not
persistent). One value of every batch is read, as the C++ side does: the DataLoader decodes and
collates every sample of a batch whatever is read of it, and summing whole batches cost the 2-worker
side more than the decoding did (docs/performance.md). The ImageFolder constructor (listing the
folder) is timed once, separately. The last line on stdout is one JSON line."""
import argparse
import json
import os
import statistics
import sys
import time

import PIL
import torch
import torchvision
from torchvision import datasets
from torchvision import transforms as T

# The book's CIFAR-10 constants (as book_epoch.py): fixed, so no pass over the data computes them.
MEAN = (0.4915, 0.4823, 0.4468)
STD = (0.2470, 0.2435, 0.2616)
DECODE_RULE = "processes decoding: 1 with 0 workers (the main process), else the worker count"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tree", help="an ImageFolder root: one subfolder per class")
    ap.add_argument("--workers", type=int, required=True, help="DataLoader num_workers")
    ap.add_argument("--resize", type=int, default=0, help="T.Resize(R) first (shorter side to R); 0: none")
    ap.add_argument("--reps", type=int, default=3, help="epochs, each with a fresh DataLoader")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch.set_num_threads in the main process; 0: leave torch's default")
    args = ap.parse_args()
    if not os.path.isdir(args.tree):
        sys.exit(f"error: {args.tree} is not a folder; make the trees with "
                 "bench/python/make_folder_trees.py OUT_DIR")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    steps = ([T.Resize(args.resize)] if args.resize else []) + [T.ToTensor(), T.Normalize(MEAN, STD)]
    t0 = time.perf_counter()
    dataset = datasets.ImageFolder(args.tree, transform=T.Compose(steps))
    listing_seconds = time.perf_counter() - t0

    seconds, checksum, image_shape = [], 0.0, None
    for _ in range(args.reps):
        # The same seed every repetition: each epoch visits the files in the same order, so the reps
        # do identical work.
        generator = torch.Generator().manual_seed(args.seed)
        t0 = time.perf_counter()
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                             num_workers=args.workers, generator=generator)
        n, total = 0, 0.0
        for imgs, labels in loader:
            n += imgs.shape[0]
            total += float(imgs[0, 0, 0, 0])  # the batch is collated whole; read one value of it, as the C++ side does
            image_shape = list(imgs.shape[1:])
        seconds.append(time.perf_counter() - t0)
        if n != len(dataset):
            sys.exit(f"error: an epoch gave {n} images, the dataset holds {len(dataset)}")
        checksum += total

    files = len(dataset)
    decode_processes = max(1, args.workers)
    median = statistics.median(seconds)
    print(json.dumps({
        "mode": "folder_epoch", "tree": os.path.abspath(args.tree), "files": files,
        "classes": len(dataset.classes), "image_shape": image_shape, "resize": args.resize or None,
        "batch_size": args.batch_size, "workers": args.workers, "reps": args.reps,
        "listing_seconds": listing_seconds, "epoch_seconds": seconds, "median_seconds": median,
        "files_per_second": files / median,
        "decode_processes": decode_processes, "decode_processes_rule": DECODE_RULE,
        "files_per_second_per_process": files / median / decode_processes,
        "torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "start_method": torch.multiprocessing.get_start_method(), "checksum": checksum}))


if __name__ == "__main__":
    main()
