"""Weight averaging: torch.optim.swa_utils.AveragedModel with an exponential moving average
(tests/golden/data/ema.pt).

A Linear(3, 2) and a BatchNorm1d(2) train for six SGD steps on seeded batches; after each step
AveragedModel (use_buffers=True, avg = decay * avg + (1 - decay) * p, as torchvision's reference
ExponentialMovingAverage) takes the model's parameters and buffers, num_batches_tracked included. The file
holds the model's tensors after every step and the average's, each step's tensors flattened in the
order parameters then buffers (integer buffers as float64). tests/golden/ema_test.cpp feeds birdplane's
WeightAverage the same tensors.
"""
import torch
from torch.optim.swa_utils import AveragedModel

DECAY = 0.9
STEPS = 6


def tensors(module):
    return list(module.parameters()) + list(module.buffers())


def flat(ts):
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in ts])


def generate(save):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = AveragedModel(model, avg_fn=lambda avg, p, n: DECAY * avg + (1 - DECAY) * p, use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    g = torch.Generator().manual_seed(6)
    out = {"shapes": torch.tensor([t.numel() for t in tensors(model)]),
           "integer": torch.tensor([0 if t.is_floating_point() else 1 for t in tensors(model)]),
           "init": flat(tensors(model))}
    models, averages = [], []
    for _ in range(STEPS):
        x = torch.randn(8, 3, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update_parameters(model)
        models.append(flat(tensors(model)))
        averages.append(flat(tensors(ema.module)))
    out["models"] = torch.stack(models)
    out["averages"] = torch.stack(averages)
    save("ema.pt", out)
