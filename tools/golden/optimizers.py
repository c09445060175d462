"""Twenty updates of torch.optim's SGD (Nesterov), Adam and AdamW over parameter groups
(tests/golden/data/optimizers.pt).

Four parameters named as a two-layer model's state_dict is ("0.weight", "0.bias", "2.weight", "2.bias";
"2" is the head) get the same seeded gradients at every step. The groups are built as birdplane's
parameter_groups builds them: the 1-D parameters without weight decay when no_decay_bias_norm is on,
and the head's parameters at lr * head_lr_multiplier. tests/golden/optimizer_test.cpp runs the same cases.
"""
import torch

NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
SHAPES = [(4, 3), (4,), (2, 4), (2,)]
STEPS = 20

CASES = {
    "sgd_nesterov_no_decay": dict(kind="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                  no_decay=True, head=1.0),
    "adam_head": dict(kind="adam", lr=1e-2, weight_decay=1e-3, no_decay=False, head=10.0),
    "adamw": dict(kind="adamw", lr=1e-2, weight_decay=0.05, no_decay=False, head=1.0),
    "adamw_no_decay_head": dict(kind="adamw", lr=3e-3, weight_decay=0.1, no_decay=True, head=4.0,
                                betas=(0.8, 0.95), eps=1e-6),
}


def groups(params, case):
    buckets = {}
    for name, p in zip(NAMES, params):
        head = case["head"] != 1.0 and name.startswith("2.")
        no_decay = case["no_decay"] and case["weight_decay"] != 0 and p.dim() <= 1
        key = (head, no_decay)
        buckets.setdefault(key, []).append(p)
    out = []
    for head in (False, True):
        for no_decay in (False, True):
            if (head, no_decay) in buckets:
                out.append({"params": buckets[(head, no_decay)],
                            "lr": case["lr"] * (case["head"] if head else 1.0),
                            "weight_decay": 0.0 if no_decay else case["weight_decay"]})
    return out


def generate(save):
    g = torch.Generator().manual_seed(2024)
    init = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(STEPS)]
    flat = lambda tensors: torch.cat([t.reshape(-1) for t in tensors])  # noqa: E731
    # Every parameter flattened and concatenated in NAMES order: init [26], grads and results [STEPS, 26].
    out = {"init": flat(init), "grads": torch.stack([flat(gr) for gr in grads])}
    for name, case in CASES.items():
        params = [torch.nn.Parameter(t.clone()) for t in init]
        gs = groups(params, case)
        if case["kind"] == "sgd":
            opt = torch.optim.SGD(gs, lr=case["lr"], momentum=case["momentum"], nesterov=case["nesterov"])
        elif case["kind"] == "adam":
            opt = torch.optim.Adam(gs, lr=case["lr"], betas=case.get("betas", (0.9, 0.999)), eps=case.get("eps", 1e-8))
        else:
            opt = torch.optim.AdamW(gs, lr=case["lr"], betas=case.get("betas", (0.9, 0.999)), eps=case.get("eps", 1e-8))
        after = []
        for k in range(STEPS):
            for p, gr in zip(params, grads[k]):
                p.grad = gr.clone()
            opt.step()
            after.append(flat([p.detach() for p in params]))
        out[name] = torch.stack(after)
    save("optimizers.pt", out)
