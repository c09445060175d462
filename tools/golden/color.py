"""Golden data for the color / photometric / misc transforms (tests/golden/color_test.cpp).

Runs torchvision 0.14's tensor functional ops on small seeded images (uint8 and float32, 2 images of
3x16x20, one channel of the second image flat), and the random classes' draws under
torch.manual_seed. Called by tools/gen_golden.py (`/usr/bin/python3 tools/gen_golden.py color`).
"""
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F


def _check_batch_equals_single(name, fn, batch):
    """torchvision's batch result must equal its per-image results (the C++ test relies on it)."""
    out = fn(batch)
    single = torch.stack([fn(x) for x in batch])
    assert torch.equal(out, single), name
    return out


def _per_image(transform, images, seed):
    """What torchvision gives image by image from one seed (the C++ batch must equal it)."""
    torch.manual_seed(seed)
    return torch.stack([transform(x) for x in images])


def generate(save):
    g = torch.Generator().manual_seed(2024)
    u8 = torch.randint(0, 256, (2, 3, 16, 20), generator=g, dtype=torch.uint8)
    u8[1, 2] = 77  # a flat channel: autocontrast's and equalize's special cases, HSV's grey pixels
    u8[0, :, 0, :4] = 200  # a few grey pixels (r == g == b) in the first image too
    f32 = torch.rand((2, 3, 16, 20), generator=g)
    f32[1, 2] = 0.25
    out = {"u8": u8, "f32": f32}

    ops = {
        "gray": lambda x: F.rgb_to_grayscale(x, 1),
        "bright13": lambda x: F.adjust_brightness(x, 1.3),
        "bright06": lambda x: F.adjust_brightness(x, 0.6),
        "contrast15": lambda x: F.adjust_contrast(x, 1.5),
        "contrast04": lambda x: F.adjust_contrast(x, 0.4),
        "sat03": lambda x: F.adjust_saturation(x, 0.3),
        "sat17": lambda x: F.adjust_saturation(x, 1.7),
        "hue02": lambda x: F.adjust_hue(x, 0.2),
        "hue_m035": lambda x: F.adjust_hue(x, -0.35),
        "gamma07": lambda x: F.adjust_gamma(x, 0.7, 1.1),
        "gamma2": lambda x: F.adjust_gamma(x, 2.0),
        "sharp25": lambda x: F.adjust_sharpness(x, 2.5),
        "sharp03": lambda x: F.adjust_sharpness(x, 0.3),
        "invert": F.invert,
        "autocontrast": F.autocontrast,
        "blur53": lambda x: F.gaussian_blur(x, [5, 3], [1.2, 0.7]),
        "blur3": lambda x: F.gaussian_blur(x, [3, 3]),
        "erase": lambda x: F.erase(x, 2, 3, 5, 6, torch.tensor([0.5, 0.25, 1.0])[:, None, None]),
    }
    u8_only = {"bright06", "contrast04", "sat17", "gamma2", "sharp03", "blur3"}  # keeps the file small
    for name, fn in ops.items():
        out[name + "_u8"] = _check_batch_equals_single(name, fn, u8)
        if name not in u8_only:
            out[name + "_f32"] = _check_batch_equals_single(name, fn, f32)
    out["solarize_u8"] = _check_batch_equals_single("solarize", lambda x: F.solarize(x, 100), u8)
    out["solarize_f32"] = _check_batch_equals_single("solarize", lambda x: F.solarize(x, 0.4), f32)
    out["posterize3_u8"] = _check_batch_equals_single("posterize", lambda x: F.posterize(x, 3), u8)
    out["posterize0_u8"] = _check_batch_equals_single("posterize", lambda x: F.posterize(x, 0), u8)
    out["equalize_u8"] = _check_batch_equals_single("equalize", F.equalize, u8)
    # Equalize on a low-contrast image (few levels: a nontrivial step) and a 1-channel image.
    low = (u8[:1] // 32 + 100).to(torch.uint8)
    out["low_u8"] = low
    out["equalize_low_u8"] = F.equalize(low)
    out["autocontrast_low_u8"] = F.autocontrast(low)
    out["equalize_gray_u8"] = F.equalize(u8[0, :1])

    # convert_image_dtype
    out["u8_to_f32"] = F.convert_image_dtype(u8, torch.float32)
    out["f32_to_u8"] = F.convert_image_dtype(f32, torch.uint8)
    out["f32_to_i16"] = F.convert_image_dtype(f32, torch.int16)
    out["u8_to_i16"] = F.convert_image_dtype(u8, torch.int16)
    out["i16_to_u8"] = F.convert_image_dtype(out["u8_to_i16"] + 100, torch.uint8)
    out["i32_to_f64"] = F.convert_image_dtype(u8.to(torch.int32) * 1000003, torch.float64)

    # LinearTransformation on 3x4x5 images (D = 60).
    small = torch.rand((2, 3, 4, 5), generator=g)
    matrix = torch.randn((60, 60), generator=g)
    mean = torch.rand((60,), generator=g)
    lt = T.LinearTransformation(matrix, mean)
    out.update({"lt_in": small, "lt_matrix": matrix, "lt_mean": mean, "lt_out": lt(small),
                "lt_out0": lt(small[0])})

    # ColorJitter draws: order and factors (nan where skipped) for 4 images, two configurations.
    def jitter_params(jitter, seed, n=4):
        torch.manual_seed(seed)
        orders, factors = [], []
        for _ in range(n):
            idx, b, c, s, h = jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
            orders.append(idx)
            factors.append([float("nan") if v is None else v for v in (b, c, s, h)])
        return torch.stack(orders), torch.tensor(factors, dtype=torch.float64)

    cj = T.ColorJitter(brightness=0.4, contrast=(0.5, 1.5), saturation=0.4, hue=0.1)
    out["cj_order"], out["cj_factors"] = jitter_params(cj, 100)
    out["cj_hue_order"], out["cj_hue_factors"] = jitter_params(T.ColorJitter(hue=0.3), 102)
    out["cj_out_u8"] = _per_image(cj, u8, 101)
    out["cj_out_f32"] = _per_image(cj, f32, 103)

    # GaussianBlur sigmas and outputs.
    torch.manual_seed(110)
    out["blur_sigmas"] = torch.tensor([T.GaussianBlur.get_params(0.1, 2.0) for _ in range(4)], dtype=torch.float64)
    out["blur_out_u8"] = _per_image(T.GaussianBlur((5, 3), sigma=(0.1, 2.0)), u8, 111)

    # RandomErasing draws (value 0; value "random"; a scale that never fits) and outputs.
    def erasing_boxes(seed, n, scale, ratio, value):
        torch.manual_seed(seed)
        boxes, noise = [], []
        for _ in range(n):
            i, j, h, w, v = T.RandomErasing.get_params(u8[0], scale=scale, ratio=ratio, value=value)
            boxes.append([i, j, h, w])
            noise.append(v.reshape(-1).float())
        return torch.tensor(boxes), torch.cat(noise)

    out["erase_boxes"], _ = erasing_boxes(120, 8, (0.02, 0.33), (0.3, 3.3), [0])
    out["erase_random_boxes"], out["erase_random_noise"] = erasing_boxes(121, 3, (0.02, 0.33), (0.3, 3.3), None)
    out["erase_nofit_boxes"], _ = erasing_boxes(122, 2, (0.9, 1.0), (3.0, 3.3), [0])
    out["erasing_out_f32"] = _per_image(T.RandomErasing(p=0.7, value="random"), f32, 123)
    out["erasing_out_u8"] = _per_image(T.RandomErasing(p=0.9, scale=(0.1, 0.4), value=(255, 0, 128)), u8, 124)

    # The flag transforms and RandomApply, image by image from a seed.
    flag_classes = {
        "invert": T.RandomInvert(0.5), "posterize": T.RandomPosterize(2, 0.5), "solarize": T.RandomSolarize(90, 0.5),
        "sharpness": T.RandomAdjustSharpness(3.0, 0.5), "autocontrast": T.RandomAutocontrast(0.5),
        "equalize": T.RandomEqualize(0.5), "grayscale": T.RandomGrayscale(0.5),
    }
    torch.manual_seed(130)
    out["flag_draws"] = torch.tensor([torch.rand(1).item() < 0.5 for _ in range(16)])
    four = torch.cat([u8, u8.flip(-1)])
    out["four_u8"] = four
    for k, (name, t) in enumerate(flag_classes.items()):
        out["random_" + name + "_u8"] = _per_image(t, four, 140 + k)
    apply = T.RandomApply([T.ColorJitter(brightness=0.5, hue=0.2), T.GaussianBlur(3)], p=0.6)
    out["random_apply_u8"] = _per_image(apply, four, 150)
    save("color.pt", out)
