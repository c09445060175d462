"""(b), (c) The book's training loop (DataLoader, SGD lr 1e-2, batch 64) on the prepared cifar2 list.
(d) with "augment": the same loop with RandomCrop(32, padding=4) and RandomHorizontalFlip() applied to
each sample by the DataLoader (0 workers, as the book), before ToTensor and Normalize.
(f) with "all": the same loop on all ten classes (the model's last layer then has 10 outputs).
Usage: book_epoch.py DATA_DIR MODEL EPOCHS [THREADS] [augment] [all]. Prints one JSON line with
seconds per epoch (data preparation is not timed: it is workload (a))."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.optim as optim
from torchvision import transforms

from book_common import BinaryCIFAR10

root, model_name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
torch.manual_seed(123)
augment = "augment" in sys.argv[5:]
all_classes = "all" in sys.argv[5:]
to_normalized = [transforms.ToTensor(),
                 transforms.Normalize((0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616))]
label_map = {i: i for i in range(10)} if all_classes else {0: 0, 2: 1}
kept = list(label_map)
n_out = len(label_map)
if augment:
    cifar10 = BinaryCIFAR10(root, train=True, transform=None)
    per_sample = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
                                    + to_normalized)
    images = [(img, label_map[label]) for img, label in cifar10 if label in kept]

    class Augmented(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img, label = images[i]
            return per_sample(img), label

    cifar2 = Augmented()
else:
    cifar10 = BinaryCIFAR10(root, train=True, transform=transforms.Compose(to_normalized))
    cifar2 = [(img, label_map[label]) for img, label in cifar10 if label in kept]

if model_name == "book-small":
    model = nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, n_out), nn.LogSoftmax(dim=1))
    loss_fn = nn.NLLLoss()
elif model_name == "book-large":
    model = nn.Sequential(nn.Linear(3072, 1024), nn.Tanh(), nn.Linear(1024, 512), nn.Tanh(),
                          nn.Linear(512, 128), nn.Tanh(), nn.Linear(128, n_out))
    loss_fn = nn.CrossEntropyLoss()
else:  # a chapter-8 convnet (tools/book_models.py), fed the same flattened rows
    from tuned_common import make_model
    model, loss_fn = make_model(model_name, n_out)
train_loader = torch.utils.data.DataLoader(cifar2, batch_size=64, shuffle=True)
optimizer = optim.SGD(model.parameters(), lr=1e-2)
seconds = []
for epoch in range(epochs):
    t0 = time.perf_counter()
    for imgs, labels in train_loader:
        outputs = model(imgs.view(imgs.shape[0], -1))
        loss = loss_fn(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds.append(time.perf_counter() - t0)
print(json.dumps({"mode": "epoch", "model": model_name, "augment": augment, "classes": n_out,
                  "images": len(cifar2), "epoch_seconds": seconds,
                  "final_train_loss": float(loss)}))
