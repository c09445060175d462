"""Golden data for the geometric transforms beyond crop/flip (tests/golden/geometry_warp_test.cpp):
pad modes, resize, center/five/ten crop, resized_crop, affine, rotate, perspective, elastic, and the
random classes' draws, from torchvision 0.14's tensor path. Run: /usr/bin/python3 tools/gen_golden.py geometry_warp
"""
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F

NEAREST, BILINEAR, BICUBIC = T.InterpolationMode.NEAREST, T.InterpolationMode.BILINEAR, T.InterpolationMode.BICUBIC


def generate(save):
    g = torch.Generator().manual_seed(2024)
    u8 = torch.randint(0, 256, (4, 3, 16, 20), generator=g, dtype=torch.uint8)  # the batch; images are u8[i]
    f32 = u8[:2].float() / 255  # float images (2)
    disp = torch.randn(1, 16, 20, 2, generator=g) * 0.1
    start = [[0, 0], [19, 0], [19, 15], [0, 15]]
    end = [[2, 1], [17, 3], [18, 14], [1, 12]]
    end2 = [[0, 3], [16, 0], [19, 12], [4, 15]]
    out = {"u8": u8, "f32": f32, "disp": disp,
           "start": torch.tensor(start), "end": torch.tensor(end), "end2": torch.tensor(end2)}

    # pad
    out["pad_const_u8"] = F.pad(u8[:2], [1, 2, 3, 4], fill=7)
    out["pad_edge_u8"] = F.pad(u8[:2], [2, 3], padding_mode="edge")
    out["pad_reflect_u8"] = F.pad(u8[:2], [3, 1, 2, 4], padding_mode="reflect")
    out["pad_symmetric_u8"] = F.pad(u8[0], [4], padding_mode="symmetric")
    out["pad_const_f"] = F.pad(f32, [2], fill=0.5)
    out["pad_reflect_f"] = F.pad(f32[0], [5], padding_mode="reflect")
    out["pad_symmetric_f"] = F.pad(f32, [1, 2, 3, 16], padding_mode="symmetric")

    # resize (tensor path: antialias off unless asked)
    out["resize_bilinear_u8"] = F.resize(u8[:2], [10, 13])
    out["resize_nearest_u8"] = F.resize(u8[:2], [24, 30], NEAREST)
    out["resize_bicubic_u8"] = F.resize(u8[:2], [12, 7], BICUBIC)
    out["resize_edge_u8"] = F.resize(u8[0], 8)
    out["resize_max_u8"] = F.resize(u8[0], 12, max_size=14)
    out["resize_aa_u8"] = F.resize(u8[:2], [9, 11], antialias=True)
    out["resize_bicubic_aa_u8"] = F.resize(u8[0], [7, 6], BICUBIC, antialias=True)
    out["resize_bilinear_f"] = F.resize(f32, [10, 13])
    out["resize_nearest_f"] = F.resize(f32[0], [7, 9], NEAREST)
    out["resize_bicubic_f"] = F.resize(f32, [24, 31], BICUBIC)
    out["resize_aa_f"] = F.resize(f32, [5, 8], antialias=True)

    # center / resized / five / ten crop
    out["cc_u8"] = F.center_crop(u8[:2], [7, 9])
    out["cc_pad_u8"] = F.center_crop(u8[:2], [19, 25])
    out["cc_mixed_u8"] = F.center_crop(u8[0], [20, 11])
    out["cc_f"] = F.center_crop(f32, [5])
    out["rc_u8"] = F.resized_crop(u8[:2], 2, 3, 10, 12, [8, 8])
    out["rc_f"] = F.resized_crop(f32, 1, 0, 15, 9, [6, 4], NEAREST)
    out["five_u8"] = torch.stack(F.five_crop(u8[:2], [6, 7]))
    out["ten_h_u8"] = torch.stack(F.ten_crop(u8[0], [5]))
    out["ten_v_f"] = torch.stack(F.ten_crop(f32, [9, 4], vertical_flip=True))

    # affine / rotate / perspective / elastic
    out["aff_u8_nearest"] = F.affine(u8[:2], 30.0, [2, -1], 0.9, [10.0, 5.0], NEAREST)
    out["aff_u8_bilinear_fill"] = F.affine(u8[:2], -20.5, [1, 3], 1.2, [-8.0, 0.0], BILINEAR, fill=[10.0, 200.0, 50.0])
    out["aff_f_bilinear_center"] = F.affine(f32, 45.0, [0, 0], 0.8, [0.0, 0.0], BILINEAR, center=[5, 4])
    out["aff_f_nearest_fill"] = F.affine(f32[0], 12.25, [-3, 2], 1.1, [15.0, -10.0], NEAREST, fill=[0.5])
    out["rot_u8_nearest"] = F.rotate(u8[:2], 33.0)
    out["rot_u8_bilinear_expand_fill"] = F.rotate(u8[:2], 33.0, BILINEAR, expand=True, fill=[255.0])
    out["rot_f_bilinear_center_fill"] = F.rotate(f32, -70.0, BILINEAR, center=[3, 12], fill=[0.1, 0.2, 0.3])
    out["rot_f_nearest_expand"] = F.rotate(f32[0], 90.0, NEAREST, expand=True)
    out["persp_coeffs"] = torch.tensor(F._get_perspective_coeffs(start, end), dtype=torch.float64)
    out["persp_u8_bilinear"] = F.perspective(u8[:2], start, end, BILINEAR)
    out["persp_u8_nearest_fill"] = F.perspective(u8[:2], start, end, NEAREST, fill=[9.0, 99.0, 199.0])
    out["persp_f_bilinear_fill"] = F.perspective(f32, start, end2, BILINEAR, fill=[0.7])
    out["el_u8_bilinear"] = F.elastic_transform(u8[:2], disp)
    out["el_u8_nearest_fill"] = F.elastic_transform(u8[:2], disp, NEAREST, fill=[50.0])
    out["el_f_bilinear_fill"] = F.elastic_transform(f32, disp, BILINEAR, fill=[0.25, 0.5, 0.75])

    # Random classes: draws for a seed, and each class applied image by image (what a batch must equal).
    def per_image(t, x, seed):
        torch.manual_seed(seed)
        return torch.stack([t(x[i]) for i in range(x.shape[0])])

    out["crop_reflect"] = per_image(T.RandomCrop((10, 12), padding=[1, 2], padding_mode="reflect"), u8, 1)
    out["crop_if_needed"] = per_image(T.RandomCrop((18, 22), pad_if_needed=True, fill=5), u8, 1)
    out["crop_symmetric_f"] = per_image(T.RandomCrop(14, padding=[1, 2, 3, 4], padding_mode="symmetric"), f32, 2)

    torch.manual_seed(2)
    out["rrc_params"] = torch.tensor([T.RandomResizedCrop.get_params(u8[0], [0.08, 1.0], [3 / 4, 4 / 3])
                                      for _ in range(8)])
    out["rrc_fallback"] = torch.tensor(T.RandomResizedCrop.get_params(u8[0], [0.08, 1.0], [2.0, 3.0]))
    out["rrc_u8"] = per_image(T.RandomResizedCrop([8, 10], scale=(0.2, 0.9)), u8, 3)
    out["rrc_f_nearest"] = per_image(T.RandomResizedCrop(7, interpolation=NEAREST), f32, 4)

    torch.manual_seed(5)
    out["vflip_flags"] = torch.tensor([bool(torch.rand(1) < 0.5) for _ in range(8)])
    out["vflip_u8"] = per_image(T.RandomVerticalFlip(0.5), u8, 5)

    torch.manual_seed(6)
    out["rot_angles"] = torch.tensor([T.RandomRotation.get_params([-40.0, 25.0]) for _ in range(4)], dtype=torch.float64)
    out["rot_cls_u8"] = per_image(T.RandomRotation(30, BILINEAR, fill=[10, 20, 30]), u8, 7)
    out["rot_cls_f"] = per_image(T.RandomRotation([-90, 90], NEAREST, center=[4, 5]), f32, 8)

    torch.manual_seed(9)
    rows = []
    for _ in range(3):
        a, (tx, ty), s, (shx, shy) = T.RandomAffine.get_params([-30.0, 30.0], [0.2, 0.3], [0.7, 1.3],
                                                               [-10.0, 10.0, -5.0, 5.0], [20, 16])
        rows.append([a, tx, ty, s, shx, shy])
    out["aff_params"] = torch.tensor(rows, dtype=torch.float64)
    out["aff_cls_u8"] = per_image(T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=8,
                                                 interpolation=BILINEAR, fill=5), u8, 10)
    out["aff_cls_f"] = per_image(T.RandomAffine([-10, 40], shear=[-5, 5, 0, 10], fill=0.5, center=[4, 6]), f32, 11)

    torch.manual_seed(12)
    out["persp_params"] = torch.tensor([T.RandomPerspective.get_params(20, 16, 0.6)[1] for _ in range(3)])
    out["persp_cls_u8"] = per_image(T.RandomPerspective(0.5, p=0.6, fill=3), u8, 13)
    out["persp_cls_f"] = per_image(T.RandomPerspective(0.3, p=1.0, interpolation=NEAREST, fill=[0.1, 0.5, 0.9]), f32, 14)

    torch.manual_seed(15)
    out["el_params"] = T.ElasticTransform.get_params([30.0, 20.0], [2.0, 1.5], [16, 20]).contiguous()
    out["el_params_nosigma"] = T.ElasticTransform.get_params([5.0, 5.0], [0.0, 0.0], [16, 20]).contiguous()
    out["el_cls_u8"] = per_image(T.ElasticTransform(alpha=40.0, sigma=2.0, fill=7), u8, 16)
    out["el_cls_f"] = per_image(T.ElasticTransform(alpha=[10.0, 30.0], sigma=[1.0, 1.0], interpolation=NEAREST), f32, 17)

    save("geometry_warp.pt", out)
