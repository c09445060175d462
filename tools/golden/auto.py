"""Golden data for the automatic augmentation policies (tests/golden/auto_test.cpp).

torchvision 0.14's autoaugment module on small seeded uint8 images: its private _apply_op for every
operation at several magnitudes (every (operation, bin) pair of the CIFAR10 policy with both signs,
plus the wide and AugMix ranges), and AutoAugment / RandAugment / TrivialAugmentWide / AugMix
applied image by image after torch.manual_seed, with the operations each image got (recorded by
wrapping _apply_op) and AugMix's Dirichlet draws. Called by tools/gen_golden.py
(`/usr/bin/python3 tools/gen_golden.py auto`).
"""
import torch
import torchvision.transforms as T
import torchvision.transforms.autoaugment as A
from torchvision.transforms import InterpolationMode

# The C++ AugmentOp enum order.
OPS = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"]
INTERP = {0: InterpolationMode.NEAREST, 1: InterpolationMode.BILINEAR}
FILL = [10.0, 200.0, 60.0]


def _op_cases(height, width):
    """(op, magnitude, interpolation id, fill?) cases for _apply_op."""
    cases = set()
    aa = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    space = aa._augmentation_space(10, (height, width))
    for sub in aa.policies:
        for name, _, bin_ in sub:
            mags, signed = space[name]
            m = float(mags[bin_].item()) if bin_ is not None else 0.0
            for s in ((1.0, -1.0) if signed else (1.0,)):
                cases.add((name, m * s, 0, False))
    # Wide ranges, AugMix's low posterize bits, bilinear and fill for the geometric ones.
    wide = T.TrivialAugmentWide()._augmentation_space(31)
    for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        m = float(wide[name][0][20].item())
        for interp, fill in ((0, False), (1, False), (0, True), (1, True)):
            cases.add((name, -m, interp, fill))
            cases.add((name, m * 0.5, interp, fill))
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):
        cases.add((name, -0.99, 0, False))
        cases.add((name, 0.99, 0, False))
    for bits in (0, 1, 4):
        cases.add(("Posterize", float(bits), 0, False))
    cases.add(("Solarize", 255.0, 0, False))
    cases.add(("Solarize", 0.0, 0, False))
    cases.add(("Identity", 0.0, 0, False))
    return sorted(cases)


class _Recorder:
    """Wraps autoaugment._apply_op to record the (op, magnitude) sequence of each call."""

    def __init__(self):
        self.steps = []
        self.original = A._apply_op

    def __enter__(self):
        def wrapped(img, op_name, magnitude, interpolation, fill):
            self.steps.append((OPS.index(op_name), magnitude))
            return self.original(img, op_name, magnitude, interpolation, fill)

        A._apply_op = wrapped
        return self

    def __exit__(self, *args):
        A._apply_op = self.original


def _run(transform, images, seed, out, key):
    """Applies `transform` image by image after torch.manual_seed(seed); stores outputs and steps."""
    torch.manual_seed(seed)
    counts, dirichlet = [], []
    if isinstance(transform, T.AugMix):
        original = transform._sample_dirichlet

        def sample(params):
            d = original(params)
            dirichlet.append(d.reshape(-1))
            return d

        transform._sample_dirichlet = sample
    with _Recorder() as rec:
        for i, img in enumerate(images):
            before = len(rec.steps)
            out[f"{key}_out{i}"] = transform(img)
            counts.append(len(rec.steps) - before)
    out[f"{key}_counts"] = torch.tensor(counts, dtype=torch.int64)
    out[f"{key}_ops"] = torch.tensor([s[0] for s in rec.steps], dtype=torch.int64)
    out[f"{key}_mags"] = torch.tensor([s[1] for s in rec.steps], dtype=torch.float64)
    if dirichlet:
        out[f"{key}_dirichlet"] = torch.cat(dirichlet)


def generate(save):
    g = torch.Generator().manual_seed(4040)
    u8 = torch.randint(0, 256, (2, 3, 16, 20), generator=g, dtype=torch.uint8)
    u8[1, :, 4:9, 5:12] = 30  # a flat patch
    big = torch.randint(40, 220, (3, 32, 32), generator=g, dtype=torch.uint8)
    out = {"u8": u8, "big": big}

    cases = _op_cases(16, 20)
    out["op_ids"] = torch.tensor([OPS.index(c[0]) for c in cases], dtype=torch.int64)
    out["op_mags"] = torch.tensor([c[1] for c in cases], dtype=torch.float64)
    out["op_interp"] = torch.tensor([c[2] for c in cases], dtype=torch.int64)
    out["op_fill"] = torch.tensor([int(c[3]) for c in cases], dtype=torch.int64)
    out["op_fill_value"] = torch.tensor(FILL, dtype=torch.float64)
    out["op_out"] = torch.stack([A._apply_op(u8[0], name, m, INTERP[i], FILL if f else None)
                                 for name, m, i, f in cases])

    images = [u8[0], u8[1], big]
    P = T.AutoAugmentPolicy
    configs = {
        "aa_cifar": (T.AutoAugment(P.CIFAR10), (1, 2, 3, 4, 5, 6)),
        "aa_cifar_bl": (T.AutoAugment(P.CIFAR10, InterpolationMode.BILINEAR, fill=[5, 250, 128]), (7, 8)),
        "aa_imagenet": (T.AutoAugment(P.IMAGENET), (9, 10)),
        "aa_svhn": (T.AutoAugment(P.SVHN, fill=100), (11, 12)),
        "ra": (T.RandAugment(), (20, 21, 22)),
        "ra_custom": (T.RandAugment(num_ops=3, magnitude=25, num_magnitude_bins=31,
                                    interpolation=InterpolationMode.BILINEAR, fill=[9, 99, 199]), (23,)),
        "ta": (T.TrivialAugmentWide(), (30, 31, 32)),
        "ta_bl": (T.TrivialAugmentWide(num_magnitude_bins=11, interpolation=InterpolationMode.BILINEAR), (33,)),
        "am": (T.AugMix(), (40, 41)),
        "am_custom": (T.AugMix(severity=7, mixture_width=2, chain_depth=2, alpha=0.5, all_ops=False,
                               interpolation=InterpolationMode.NEAREST), (42,)),
    }
    for key, (transform, seeds) in configs.items():
        for seed in seeds:
            _run(transform, images, seed, out, f"{key}_s{seed}")
    save("auto.pt", out)
