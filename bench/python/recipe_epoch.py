"""(n) The tuned PyTorch epoch (tuned_epoch.py: whole tensors, randperm + index_select batches of 64)
with the settings of `birdplane train --recipe modern` and a gradient-norm clip: Nesterov SGD (lr
0.05, momentum 0.9, weight decay 5e-4 on the weights and none on the 1-D parameters), a linear warmup
over a tenth of the epochs from 0.1 x lr then cosine to 0 (per epoch), mixup (alpha 0.2, one lambda
per batch from Beta, the batch mixed with itself rolled by one) on soft targets, cross-entropy with
label smoothing 0.1, clip_grad_norm_ (the given norm) and an exponential weight average (decay 0.999,
parameters and buffers, updated after every step, as AveragedModel with use_buffers=True computes it,
here with torch._foreach_* over the tensor lists). Validation (and its mirrored test-time
augmentation) is not timed, as on the C++ side.
The convnets run in channels-last memory order as in tuned_epoch.py; "nchw" keeps PyTorch's default.
Usage: recipe_epoch.py DATA_DIR MODEL EPOCHS [THREADS] [CLIP_NORM] [nchw]. Prints one JSON line with
seconds per epoch (data preparation is not timed)."""
import json
import sys
import time

import torch
import torch.nn.functional as F
import torch.optim as optim

from tuned_common import load_normalized, make_model

root, model_name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
clip_norm = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
channels_last = model_name.startswith("net") and "nchw" not in sys.argv[6:]
torch.manual_seed(123)
x, y = load_normalized(root, train=True)
n, classes = x.shape[0], 2
model, _ = make_model(model_name, classes, channels_last=channels_last)
decay = [p for p in model.parameters() if p.dim() > 1]
no_decay = [p for p in model.parameters() if p.dim() <= 1]
optimizer = optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=0.05, momentum=0.9, nesterov=True)
warmup = epochs // 10
cosine = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - warmup)
schedule = cosine if warmup == 0 else optim.lr_scheduler.SequentialLR(
    optimizer, [optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup), cosine], [warmup])
averaged = [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]
current = [t.detach() for t in list(model.parameters()) + list(model.buffers())]
beta = torch.distributions.Beta(torch.tensor([0.2]), torch.tensor([0.2]))
batch_size = 64
seconds = []
for epoch in range(epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        imgs, labels = x.index_select(0, idx), y.index_select(0, idx)
        targets = F.one_hot(labels, classes).float()
        lam = float(beta.sample())
        imgs = imgs.mul(lam).add_(imgs.roll(1, 0), alpha=1 - lam)
        targets = targets.mul(lam).add_(targets.roll(1, 0), alpha=1 - lam)
        loss = F.cross_entropy(model(imgs), targets, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_mul_(averaged, 0.999)
            torch._foreach_add_(averaged, current, alpha=0.001)
    schedule.step()
    seconds.append(time.perf_counter() - t0)
print(json.dumps({"mode": "recipe_epoch", "model": model_name, "classes": classes, "images": n,
                  "clip_grad_norm": clip_norm, "memory_format": "channels_last" if channels_last else "contiguous",
                  "epoch_seconds": seconds, "final_train_loss": float(loss)}))
