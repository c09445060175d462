"""torchvision's architectures (tests/golden/data/backbones.pt), and the seeded weight files the tests
load as a user loads torchvision's published ones.

Weights: each model is built by torchvision with torch.manual_seed(SEED) at CLASSES classes, then every
floating tensor is moved off its initial value (seeded; batch-norm and layer-norm scales near 1, shifts
and running means near 0, running variances in [0.5, 1.5], ConvNeXt's layer scales near 0.2), so a
comparison exercises every tensor. They are saved as torchvision publishes its files:
torch.save(model.state_dict()), an OrderedDict with its _metadata. The tests write them at run time
(`/usr/bin/python3 tools/golden/backbones.py weights DIR`); the golden file holds what they must give:

  input                   float [3, 3, 64, 64], seeded (every model's)
  <model>.eval            logits in eval mode
  <model>.train           logits in train mode (batch statistics), dropout and stochastic depth off
  <model>.after_train     the first and last batch norm's running mean and var after that forward
  <model>.checksum        sum of |t| over the weight file's floating tensors (the same file is made)
  <model>.init_std        std of each floating tensor of torchvision's own initialization (seed
                          SEED, 10 classes), in state_dict order; .init_mean their means, .init_iqr
                          their interquartile ranges

`one MODEL FILE` writes one model's seeded weights. `predict MODEL WEIGHTS OUT IMAGE...` classifies image
files as torchvision's weights entries preprocess them (read_image, then the IMAGENET1K_V1 transforms, or the
entry whose file name WEIGHTS carries) and saves the softmax probabilities (tests/cli/backbones_cli_test.cpp).
`check MODEL STATE OUT` loads a state_dict written by birdplane (export) into torchvision's class with
strict=True and saves its eval logits on the input (tests/golden/backbones_test.cpp).
"""
import sys

import torch
import torchvision

MODELS = ["resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
          "convnext_tiny"]
SEED = 17
CLASSES = 10


def build(name, classes=CLASSES, **kwargs):
    torch.manual_seed(SEED)
    return getattr(torchvision.models, name)(num_classes=classes, **kwargs)


def off(name, classes=CLASSES, **kwargs):
    """The model with dropout and stochastic depth off (ResNets have neither)."""
    if name.startswith("mobilenet"):
        kwargs["dropout"] = 0.0
    elif name.startswith("efficientnet"):
        # efficientnet_b0() fixes dropout 0.2; the classifier's Dropout is set to 0 below.
        kwargs["stochastic_depth_prob"] = 0.0
    elif name.startswith("convnext"):
        kwargs["stochastic_depth_prob"] = 0.0
    model = build(name, classes, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def perturb(model):
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if not t.is_floating_point():
                t.fill_(int(torch.randint(0, 100, (1,), generator=g)))
            elif key.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif key.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif key.endswith("layer_scale"):
                t.copy_(0.2 + 0.05 * torch.randn(t.shape, generator=g))
            elif t.dim() == 1 and key.endswith("weight"):  # normalization scales
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            elif key.endswith("bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            else:
                t.add_(0.1 * t.std() * torch.randn(t.shape, generator=g))
    return model


def weights(name, classes=CLASSES):
    return perturb(off(name, classes))


def write_weights(folder):
    import os
    for name in MODELS:
        torch.save(weights(name).state_dict(), os.path.join(folder, f"{name}.pth"))


def checksum(state):
    return torch.tensor(sum(float(t.double().abs().sum()) for t in state.values() if t.is_floating_point()),
                        dtype=torch.float64)


def sample():
    g = torch.Generator().manual_seed(SEED + 2)
    return torch.randn(3, 3, 64, 64, generator=g)


def iqr(t):
    """The interquartile range: a spread that one clamped outlier of trunc_normal_ cannot move."""
    if t.numel() < 2:
        return 0.0
    q = torch.quantile(t.detach().double().flatten(), torch.tensor([0.25, 0.75], dtype=torch.float64))
    return float(q[1] - q[0])


def norm_keys(state):
    return [k[:-len(".running_mean")] for k in state if k.endswith("running_mean")]


def generate(save):
    out = {"input": sample()}
    for name in MODELS:
        model = weights(name)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        x = sample()
        out[f"{name}.checksum"] = checksum(state)
        with torch.no_grad():
            model.eval()
            out[f"{name}.eval"] = model(x)
            model.train()
            out[f"{name}.train"] = model(x)
        after = model.state_dict()
        norms = norm_keys(after)
        for i, key in enumerate([norms[0], norms[-1]] if norms else []):  # ConvNeXt has none
            out[f"{name}.after_train.{i}.running_mean"] = after[key + ".running_mean"].clone()
            out[f"{name}.after_train.{i}.running_var"] = after[key + ".running_var"].clone()
            out[f"{name}.after_train.{i}.num_batches_tracked"] = after[key + ".num_batches_tracked"].clone()
        fresh = build(name)
        params = [p for p in fresh.state_dict().values() if p.is_floating_point()]
        out[f"{name}.init_std"] = torch.tensor([float(p.std()) if p.numel() > 1 else 0.0 for p in params],
                                               dtype=torch.float64)
        out[f"{name}.init_mean"] = torch.tensor([float(p.mean()) for p in params], dtype=torch.float64)
        out[f"{name}.init_iqr"] = torch.tensor([iqr(p) for p in params], dtype=torch.float64)
    save("backbones.pt", out)


def check(name, state_path, out_path):
    state = torch.load(state_path)
    model = off(name, classes=state[[k for k in state if k.endswith("weight")][-1]].shape[0])
    model.load_state_dict(state, strict=True)
    model.eval()
    x = sample()
    with torch.no_grad():
        logits = model(x)
    torch.save({"input": x, "logits": logits}, out_path)


def predict(name, weights_path, out_path, images):
    import os
    from torchvision.io import ImageReadMode, read_image
    state = torch.load(weights_path)
    classes = state[[k for k in state if k.endswith("weight")][-1]].shape[0]
    model = off(name, classes=classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    entries = [w for w in torchvision.models.get_model_weights(name)]
    entry = next((w for w in entries if os.path.basename(w.url) == os.path.basename(weights_path)), entries[0])
    preprocess = entry.transforms()
    batch = torch.stack([preprocess(read_image(f, ImageReadMode.RGB)) for f in images])
    with torch.no_grad():
        probs = torch.softmax(model(batch), 1)
    torch.save({"probabilities": probs, "inputs": batch, "resize": torch.tensor(preprocess.resize_size)}, out_path)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "weights":
        write_weights(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "one":
        torch.save(weights(sys.argv[2]).state_dict(), sys.argv[3])
    elif len(sys.argv) >= 6 and sys.argv[1] == "predict":
        predict(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) == 5 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: backbones.py weights DIR | one MODEL FILE | predict MODEL WEIGHTS OUT IMAGE... | "
                 "check MODEL STATE OUT")
