"""(p) Serving latency, PyTorch eager: the model birdplane_bench predict saved in DIR (state.pt, the
book's class from tools/book_models.py or torchvision's ResNet-18) in eval mode under torch.no_grad();
per call, uint8 images to float, scaled and normalized, the forward pass, softmax and the top 5, as
birdplane's Predictor does. Seconds per call on one image and on a batch of 64, medians.
Usage: predict_eager.py MODEL DIR CALLS [THREADS]. Prints one JSON line."""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from book_models import BookMlp, build  # noqa: E402

name, folder, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
if name == "resnet18":
    import torchvision
    model = torchvision.models.resnet18(num_classes=10)
    target = model
else:
    model = build(name, 32, 10, 10)
    target = model.seq if isinstance(model, BookMlp) else model
target.load_state_dict(torch.load(os.path.join(folder, "state.pt")))
model.eval()
mean = torch.tensor([0.4915, 0.4823, 0.4468]).view(1, 3, 1, 1)
std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
torch.manual_seed(5)


def classify(images):
    with torch.no_grad():
        x = (images.float() / 255 - mean) / std
        p = torch.softmax(model(x), dim=1)
        return p.topk(5, dim=1)


def time_calls(batch, n):
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
    for _ in range(10):
        classify(images)
    seconds = []
    for _ in range(n):
        t0 = time.perf_counter()
        classify(images)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


single = time_calls(1, calls)
batch = time_calls(64, max(10, calls // 10))
print(json.dumps({"mode": "predict", "side": "eager", "model": name, "single_seconds": single,
                  "batch64_seconds": batch, "threads": torch.get_num_threads()}))
