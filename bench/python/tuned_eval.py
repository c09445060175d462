"""(e) Evaluation throughput, tuned PyTorch: an untrained model (seed 123; speed does not depend on the
weights) in eval mode under torch.no_grad(), batches of 1000 sliced from the normalized tensor,
loss and correct count per batch. The validation set N times, the training set max(3, N // 4) times.
Usage: tuned_eval.py DATA_DIR MODEL N [THREADS] [all]. Prints one JSON line with images/s per pass."""
import json
import sys
import time

import torch

from tuned_common import load_normalized, make_model

root, model_name, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
all_classes = "all" in sys.argv[5:]
torch.manual_seed(123)
model, loss_fn = make_model(model_name, 10 if all_classes else 2)
model.eval()
val = load_normalized(root, train=False, all_classes=all_classes)
train = load_normalized(root, train=True, all_classes=all_classes)
checksum = 0.0


def passes(data, count, batch_size=1000):
    global checksum
    x, y = data
    rates = []
    with torch.no_grad():
        for _ in range(count):
            t0 = time.perf_counter()
            loss_sum, correct = 0.0, 0
            for start in range(0, x.shape[0], batch_size):
                out = model(x[start:start + batch_size])
                labels = y[start:start + batch_size]
                loss_sum += float(loss_fn(out, labels)) * labels.shape[0]
                correct += int(out.argmax(1).eq(labels).sum())
            rates.append(x.shape[0] / (time.perf_counter() - t0))
            checksum += loss_sum / x.shape[0]
    return rates


val_rates = passes(val, repeats)
train_rates = passes(train, max(3, repeats // 4))
print(json.dumps({"mode": "eval", "model": model_name, "val_images": val[0].shape[0],
                  "train_images": train[0].shape[0], "val_images_per_second": val_rates,
                  "train_images_per_second": train_rates, "checksum": checksum}))
