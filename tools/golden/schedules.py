"""Learning rates of torch.optim.lr_scheduler per batch (tests/golden/data/schedules.pt).

Each case trains nothing: an SGD optimizer over two parameter groups (rates 0.1 and 0.5, as a head
with a multiplier of 5 would have) is stepped through EPOCHS epochs of STEPS batches, and the rate of
each group is read before every batch. Per-epoch schedulers step after each epoch, per-batch ones after
each batch, as a training loop calls them. tests/unit/train/schedule_test.cpp builds the same cases.
"""
import numpy as np
import torch
from torch.optim import lr_scheduler as S

EPOCHS, STEPS = 8, 5
BASES = (0.1, 0.5)


def optimizer():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD([{"params": [params[0]], "lr": BASES[0]}, {"params": [params[1]], "lr": BASES[1]}],
                           lr=BASES[0])


def warmed(opt, warmup, factor, main_fn):
    """LinearLR warmup then the main scheduler, as torchvision's reference script chains them."""
    if warmup == 0:
        return main_fn(opt)
    warm = S.LinearLR(opt, start_factor=factor, total_iters=warmup)
    main = main_fn(opt)
    return S.SequentialLR(opt, schedulers=[warm, main], milestones=[warmup])


def record(make, per_step, metrics=None):
    opt = optimizer()
    sched = make(opt)
    rates = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            rates.append([g["lr"] for g in opt.param_groups])
            opt.step()
            if per_step:
                sched.step()
        if not per_step:
            if metrics is not None:
                sched.step(metrics[epoch])
            else:
                sched.step()
    return torch.tensor(rates, dtype=torch.float64)


def generate(save):
    total = EPOCHS * STEPS
    loss_curve = [1.0, 0.9, 0.9, 0.95, 0.9, 0.89, 0.9, 0.91]
    accuracy_curve = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]
    cases = {
        "step_epoch": (lambda o: S.StepLR(o, step_size=3, gamma=0.5), False),
        "multistep_epoch": (lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.1), False),
        "exponential_epoch": (lambda o: S.ExponentialLR(o, gamma=0.8), False),
        "cosine_epoch": (lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=0.001), False),
        "cosine_step_warmup": (lambda o: warmed(o, 7, 0.1, lambda o: S.CosineAnnealingLR(o, T_max=total - 7)),
                               True),
        "step_epoch_warmup": (lambda o: warmed(o, 2, 0.01, lambda o: S.StepLR(o, step_size=2, gamma=0.5)), False),
        "constant_epoch_warmup": (lambda o: warmed(o, 3, 0.25, lambda o: S.ConstantLR(o, factor=1.0)), False),
        "onecycle": (lambda o: S.OneCycleLR(o, max_lr=list(BASES), total_steps=total, cycle_momentum=False), True),
        "onecycle_linear": (lambda o: S.OneCycleLR(o, max_lr=list(BASES), total_steps=total, pct_start=0.25,
                                                   div_factor=10.0, final_div_factor=100.0,
                                                   anneal_strategy="linear", cycle_momentum=False), True),
        "piecewise": (lambda o: S.LambdaLR(o, lambda t: float(np.interp(t, [0, 0.23 * total, total],
                                                                         [0.2, 1.0, 0.07]))), True),
    }
    out = {name: record(make, per_step) for name, (make, per_step) in cases.items()}
    out["plateau_loss"] = record(lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1, cooldown=1,
                                                               min_lr=0.03), False, loss_curve)
    out["plateau_accuracy"] = record(lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.1, patience=0),
                                     False, accuracy_curve)
    out["loss_curve"] = torch.tensor(loss_curve, dtype=torch.float64)
    out["accuracy_curve"] = torch.tensor(accuracy_curve, dtype=torch.float64)
    save("schedules.pt", out)
