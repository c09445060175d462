"""(b), (c), (f) A tuned PyTorch epoch: the same model, SGD lr 1e-2, batch 64 and seed as book_epoch.py,
but the data prepared once as one normalized float tensor [N, 3072] plus a label tensor; each epoch
draws a torch.randperm and takes its batches with index_select (no DataLoader, no per-sample
work), and gradients are set to None instead of zeroed.
"bf16" runs the forward pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16);
"all" trains on all ten classes. The chapter-8 convnets run in channels-last memory order (weights
and each batch; tuned_common.make_model), which docs/performance.md measured faster than NCHW on this
loop; "nchw" keeps PyTorch's default layout, as the book's code has it.
Usage: tuned_epoch.py DATA_DIR MODEL EPOCHS [THREADS] [bf16] [all] [nchw].
Prints one JSON line with seconds per epoch (data preparation is not timed)."""
import contextlib
import json
import sys
import time

import torch
import torch.optim as optim

from tuned_common import load_normalized, make_model

root, model_name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
bf16 = "bf16" in sys.argv[5:]
all_classes = "all" in sys.argv[5:]
channels_last = model_name.startswith("net") and "nchw" not in sys.argv[5:]
torch.manual_seed(123)
x, y = load_normalized(root, train=True, all_classes=all_classes)
n = x.shape[0]
model, loss_fn = make_model(model_name, 10 if all_classes else 2, channels_last=channels_last)
optimizer = optim.SGD(model.parameters(), lr=1e-2)
precision = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
batch_size = 64
seconds = []
for epoch in range(epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        imgs, labels = x.index_select(0, idx), y.index_select(0, idx)
        with precision():
            outputs = model(imgs)
            loss = loss_fn(outputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds.append(time.perf_counter() - t0)
print(json.dumps({"mode": "tuned_epoch", "model": model_name, "bf16": bf16, "classes": 10 if all_classes else 2,
                  "images": n, "memory_format": "channels_last" if channels_last else "contiguous",
                  "epoch_seconds": seconds, "final_train_loss": float(loss)}))
