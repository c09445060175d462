#!/usr/bin/python3
"""PyTorch's own figures for a chapter-8 model on the same files: the book's training loop in its
tuned form (normalized tensors, randperm batches of 64, SGD lr 1e-2, seed 123), then train and
validation accuracy. For comparing birdplane's 100-epoch results with PyTorch on this copy of the
data. Usage: /usr/bin/python3 tools/book_train.py DATA_DIR MODEL [EPOCHS] [THREADS]"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "python"))
from tuned_common import load_normalized, make_model  # noqa: E402

root, name = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
torch.manual_seed(123)
x, y = load_normalized(root, train=True)
xv, yv = load_normalized(root, train=False)
model, loss_fn = make_model(name, 2)
opt = torch.optim.SGD(model.parameters(), lr=1e-2)
for epoch in range(epochs):
    model.train()
    perm = torch.randperm(x.shape[0])
    for start in range(0, x.shape[0], 64):
        idx = perm[start:start + 64]
        loss = loss_fn(model(x.index_select(0, idx)), y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
model.eval()
with torch.no_grad():
    acc = lambda a, b: float((model(a).argmax(1) == b).float().mean())
    print(json.dumps({"model": name, "epochs": epochs, "train_accuracy": acc(x, y), "val_accuracy": acc(xv, yv)}))
