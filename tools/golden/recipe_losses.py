"""Label smoothing, class weights and gradient clipping (tests/golden/data/recipe_losses.pt).

F.cross_entropy with label_smoothing and weight= on seeded logits (its value and the gradient of the
logits), the same on log_softmax outputs as nll models give them, and clip_grad_norm_ /
clip_grad_value_ on seeded gradients. tests/golden/recipe_losses_test.cpp checks birdplane's.
"""
import torch
import torch.nn.functional as F


def generate(save):
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(12, 5, generator=g) * 3
    target = torch.randint(0, 5, (12,), generator=g)
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])
    out = {"logits": logits, "target": target, "weight": weight}
    for name, kwargs in {"smooth": dict(label_smoothing=0.1), "weighted": dict(weight=weight),
                         "smooth_weighted": dict(label_smoothing=0.2, weight=weight)}.items():
        x = logits.clone().requires_grad_(True)
        loss = F.cross_entropy(x, target, **kwargs)
        loss.backward()
        out[f"{name}/loss"] = loss.detach().reshape(1)
        out[f"{name}/grad"] = x.grad
    grads = [torch.randn(4, 3, generator=g), torch.randn(4, generator=g) * 5]
    for name, clip in {"norm": lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.5),
                       "value": lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.7)}.items():
        ps = [torch.nn.Parameter(torch.zeros_like(t)) for t in grads]
        for p, t in zip(ps, grads):
            p.grad = t.clone()
        clip(ps)
        out[f"clip_{name}/0"] = ps[0].grad
        out[f"clip_{name}/1"] = ps[1].grad
    out["clip_in/0"], out["clip_in/1"] = grads
    save("recipe_losses.pt", out)
