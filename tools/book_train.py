#!/usr/bin/python3
"""PyTorch's own figures for a chapter-8 model on the same files: the book's training loop in its
tuned form (normalized tensors, randperm batches of 64, SGD, seed 123), then train and validation
accuracy. For comparing birdplane's 100-epoch results with PyTorch on this copy of the data.

Usage: /usr/bin/python3 tools/book_train.py DATA_DIR MODEL [EPOCHS] [THREADS]
           [--lr 1e-2] [--blocks 10] [--separate-blocks] [--metrics FILE.csv]

--metrics writes one row an epoch: the mean training loss, the validation accuracy in evaluation
mode (batch norm with its running statistics, as birdplane's metrics.csv reports it) and with each
batch norm using the statistics of the validation batch itself (a copy of the model in training mode,
batches of 250 validation images in a fixed random order, no gradient: the running statistics stay
untouched; the order matters, as this copy's test split holds long runs of one class). The two
differ when the running statistics do not describe what a layer sees, as in net-res-deep, whose one
block (and its batch norm) is applied at every depth."""
import argparse
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "python"))
from tuned_common import load_normalized  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import book_models  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("data_dir")
parser.add_argument("model")
parser.add_argument("epochs", nargs="?", type=int, default=100)
parser.add_argument("threads", nargs="?", type=int, default=2)
parser.add_argument("--lr", type=float, default=1e-2)
parser.add_argument("--blocks", type=int, default=10, help="net-res-deep's block count (the book's class: 10)")
parser.add_argument("--separate-blocks", action="store_true",
                    help="net-res-deep: a block of its own at each depth (the book's code shares one)")
parser.add_argument("--metrics", help="a CSV file for the per-epoch figures")
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(123)
x, y = load_normalized(args.data_dir, train=True)
xv, yv = load_normalized(args.data_dir, train=False)
x, xv = x.view(-1, 3, 32, 32), xv.view(-1, 3, 32, 32)
model = book_models.build(args.model, 32, args.blocks, 2, not args.separate_blocks)
loss_fn = torch.nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), lr=args.lr)


def accuracy(m, a, b):
    # Batches of 250: one batch of thousands of images makes PyTorch's convolution take a much slower path.
    with torch.no_grad():
        right = sum(int((m(a[i:i + 250]).argmax(1) == b[i:i + 250]).sum()) for i in range(0, a.shape[0], 250))
    return right / a.shape[0]


mixed = torch.randperm(xv.shape[0], generator=torch.Generator().manual_seed(0))
rows = []
for epoch in range(1, args.epochs + 1):
    start_time = time.perf_counter()
    model.train()
    perm = torch.randperm(x.shape[0])
    total, batches = 0.0, 0
    for start in range(0, x.shape[0], 64):
        idx = perm[start:start + 64]
        loss = loss_fn(model(x.index_select(0, idx)), y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss)
        batches += 1
    seconds = time.perf_counter() - start_time
    if args.metrics:
        model.eval()
        val = accuracy(model, xv, yv)
        batch_stats = copy.deepcopy(model).train()
        val_batch_stats = accuracy(batch_stats, xv[mixed], yv[mixed])
        rows.append((epoch, total / batches, val, val_batch_stats, seconds))
        print(f"epoch {epoch} loss {total / batches:.4f} val {val:.4f} val(batch statistics) "
              f"{val_batch_stats:.4f} {seconds:.1f} s", flush=True)
        with open(args.metrics, "w") as f:
            f.write("epoch,train_loss,val_accuracy,val_accuracy_batch_statistics,seconds\n")
            for r in rows:
                f.write("%d,%.6f,%.4f,%.4f,%.2f\n" % r)
model.eval()
print(json.dumps({"model": args.model, "blocks": args.blocks, "separate_blocks": args.separate_blocks,
                  "lr": args.lr, "epochs": args.epochs,
                  "train_accuracy": accuracy(model, x, y), "val_accuracy": accuracy(model, xv, yv)}))
