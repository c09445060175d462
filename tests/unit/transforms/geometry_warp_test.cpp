// Bad arguments to the geometric functions and classes give errors naming the parameter; a few
// properties that need no golden file (reprs, shapes, identities).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/warp.h"
#include "support/expect_error.h"

using namespace birdplane;
using birdplane::fixtures::expect_error;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;
using F::InterpolationMode;
using F::PaddingMode;

namespace {
at::Tensor image() { return torch::zeros({3, 16, 20}, torch::kUInt8); }
}  // namespace

TEST(GeometryWarpErrors, PaddingAndSizes) {
  expect_error([] { F::pad(image(), {-1}); }, {"pad", "padding", "0 or more", "-1"});
  expect_error([] { F::pad(image(), {1, 2, 3}); }, {"padding must have 1, 2 or 4 values", "got 3"});
  expect_error([] { F::pad(image(), {0, 16}, 0, PaddingMode::kReflect); }, {"reflect", "smaller than the image", "16x20"});
  expect_error([] { F::pad(image(), {21}, 0, PaddingMode::kSymmetric); }, {"symmetric", "must not exceed"});
  expect_error([] { T::Pad({-2}); }, {"Pad", "padding", "-2"});
  expect_error([] { F::padding_mode_from_string("wrap"); }, {"padding_mode 'wrap'", "constant, edge, reflect, symmetric"});
  expect_error([] { F::interpolation_from_string("lanczos"); }, {"interpolation 'lanczos'", "nearest, bilinear, bicubic"});
  expect_error([] { F::resize(image(), {0, 4}); }, {"resize", "size", "1 or more"});
  expect_error([] { F::resize(image(), {8, 8}, InterpolationMode::kBilinear, 10); }, {"max_size", "one value"});
  expect_error([] { F::resize(image(), {8}, InterpolationMode::kBilinear, 8); }, {"max_size = 8", "larger"});
  expect_error([] { F::resize(image(), {8}, InterpolationMode::kNearest, std::nullopt, true); }, {"antialias", "nearest"});
  expect_error([] { T::Resize({0}); }, {"Resize", "size", "1 or more"});
  expect_error([] { T::CenterCrop({4, 0}); }, {"CenterCrop", "size", "1 or more"});
  expect_error([] { F::five_crop(image(), {17, 4}); }, {"five_crop", "17x4", "larger than the image 16x20"});
  expect_error([] { T::FiveCrop({1, 2, 3}); }, {"FiveCrop", "size must have 1 or 2 values"});
  expect_error([] { T::RandomCrop(T::RandomCropOptions({8}).padding({1, 2, 3})); }, {"RandomCrop", "padding", "got 3"});
  expect_error([] { T::RandomCrop(T::RandomCropOptions({0, 4})); }, {"RandomCrop", "size must be 1 or more"});
  expect_error([] { T::RandomCrop(T::RandomCropOptions({18, 20}))(image()); }, {"RandomCrop", "larger", "pad_if_needed"});
}

TEST(GeometryWarpErrors, RandomRanges) {
  expect_error([] { T::RandomResizedCrop({8}, {0.9, 0.1}); }, {"RandomResizedCrop", "scale", "min <= max"});
  expect_error([] { T::RandomResizedCrop({8}, {0.1, 0.9}, {2.0, 1.0}); }, {"RandomResizedCrop", "ratio", "min <= max"});
  expect_error([] { T::RandomResizedCrop({8}, {0.1, 0.9}, {0.0, 1.0}); }, {"RandomResizedCrop", "ratio", "positive"});
  expect_error([] { T::RandomVerticalFlip(1.5); }, {"RandomVerticalFlip", "p is 1.5"});
  expect_error([] { T::RandomRotation({-5}); }, {"RandomRotation", "degrees", "0 or more"});
  expect_error([] { T::RandomRotation({10, -10}); }, {"RandomRotation", "degrees", "min <= max"});
  expect_error([] { T::RandomRotation({1, 2, 3}); }, {"RandomRotation", "degrees", "one number or 2"});
  expect_error([] { T::RandomRotation({10}, InterpolationMode::kBicubic); }, {"RandomRotation", "bicubic"});
  expect_error([] { T::RandomAffine({-1}); }, {"RandomAffine", "degrees", "0 or more"});
  expect_error([] { T::RandomAffine({10}, {0.5, 1.5}); }, {"RandomAffine", "translate", "between 0 and 1"});
  expect_error([] { T::RandomAffine({10}, {}, {1.2, 0.8}); }, {"RandomAffine", "scale", "min <= max"});
  expect_error([] { T::RandomAffine({10}, {}, {0.0, 0.8}); }, {"RandomAffine", "scale", "positive"});
  expect_error([] { T::RandomAffine({10}, {}, {}, {-3}); }, {"RandomAffine", "shear", "0 or more"});
  expect_error([] { T::RandomAffine({10}, {}, {}, {1, 2, 3}); }, {"RandomAffine", "shear", "2 or 4"});
  expect_error([] { T::RandomPerspective(1.5); }, {"RandomPerspective", "distortion_scale is 1.5", "between 0 and 1"});
  expect_error([] { T::RandomPerspective(0.5, -0.1); }, {"RandomPerspective", "p is -0.1"});
  expect_error([] { T::ElasticTransform({-1}); }, {"ElasticTransform", "alpha", "0 or more"});
  expect_error([] { T::ElasticTransform({1}, {2, 0}); }, {"ElasticTransform", "sigma", "both positive or both 0"});
  // torchvision's default sigma=5 blurs with a 41-pixel kernel: too large for a 16x20 image.
  expect_error([] { T::ElasticTransform()(image()); }, {"ElasticTransform", "41-pixel kernel", "16x20"});
}

TEST(GeometryWarpErrors, WarpArguments) {
  expect_error([] { F::affine(image(), 0, {0, 0}, 0, {0, 0}); }, {"affine", "scale must be positive"});
  expect_error([] { F::affine(image(), 0, {0, 0}, 1, {0, 0}, InterpolationMode::kBicubic); }, {"affine", "bicubic"});
  expect_error([] { F::rotate(image(), 10, InterpolationMode::kNearest, false, std::nullopt, std::vector<double>{1, 2}); },
               {"rotate", "fill has 2 values", "3"});
  expect_error([] { F::elastic_transform(image(), torch::zeros({1, 16, 19, 2})); }, {"elastic_transform", "displacement"});
  expect_error([] { T::RandomRotation({10}, InterpolationMode::kNearest, false, std::nullopt, {1, 2})(image()); },
               {"RandomRotation", "fill has 2 values"});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  expect_error([&] {
    T::RandomRotation({0, 90}, InterpolationMode::kNearest, true).forward(torch::zeros({4, 3, 16, 20}), gen);
  }, {"RandomRotation", "expand=True", "one size"});
}

TEST(GeometryWarp, ReprsFollowTorchvision) {
  EXPECT_EQ(T::Resize({32}).repr(), "Resize(size=32, interpolation=bilinear, max_size=None, antialias=None)");
  EXPECT_EQ(T::CenterCrop({24}).repr(), "CenterCrop(size=(24, 24))");
  EXPECT_EQ(T::Pad({1, 2}, 3, PaddingMode::kReflect).repr(), "Pad(padding=[1, 2], fill=3, padding_mode=reflect)");
  EXPECT_EQ(T::RandomCrop(T::RandomCropOptions({24, 28})).repr(), "RandomCrop(size=(24, 28), padding=None)");
  EXPECT_EQ(T::RandomCrop(32, 4).repr(), "RandomCrop(size=(32, 32), padding=4)");
  EXPECT_EQ(T::RandomResizedCrop({32}).repr(),
            "RandomResizedCrop(size=(32, 32), scale=(0.08, 1.0), ratio=(0.75, 1.3333), interpolation=bilinear, "
            "antialias=None)");
  EXPECT_EQ(T::RandomVerticalFlip(0.3).repr(), "RandomVerticalFlip(p=0.3)");
  EXPECT_EQ(T::RandomRotation({30}).repr(), "RandomRotation(degrees=[-30.0, 30.0], interpolation=nearest, expand=False, fill=0)");
  EXPECT_EQ(T::RandomAffine({10}, {0.1, 0.2}).repr(), "RandomAffine(degrees=[-10.0, 10.0], translate=[0.1, 0.2])");
  EXPECT_EQ(T::RandomPerspective().repr(), "RandomPerspective(p=0.5)");
}

TEST(GeometryWarp, IdentitiesAndShapes) {
  auto x = torch::randint(0, 256, {2, 3, 16, 20}, torch::kInt64).to(torch::kUInt8);
  // No rotation, no shift, no scale: the image itself, with either interpolation.
  EXPECT_TRUE(torch::equal(F::affine(x, 0, {0, 0}, 1, {0, 0}), x));
  EXPECT_TRUE(torch::equal(F::rotate(x, 0, InterpolationMode::kBilinear, false, std::nullopt, std::vector<double>{0}), x));
  EXPECT_TRUE(torch::equal(F::elastic_transform(x, torch::zeros({1, 16, 20, 2})), x));
  EXPECT_EQ(T::FiveCrop({8})(x).sizes(), (std::vector<int64_t>{2, 5, 3, 8, 8}));
  EXPECT_EQ(T::TenCrop({8, 6})(x[0]).sizes(), (std::vector<int64_t>{10, 3, 8, 6}));
  EXPECT_EQ(F::resized_output_size(16, 20, {8}), (std::array<int64_t, 2>{8, 10}));
  EXPECT_EQ(F::resized_output_size(20, 16, {8}, 9), (std::array<int64_t, 2>{9, 7}));
  EXPECT_EQ(F::rotate(x, 90, InterpolationMode::kNearest, true).sizes(), (std::vector<int64_t>{2, 3, 20, 16}));
  EXPECT_EQ(F::to_string(F::interpolation_from_string("InterpolationMode.BICUBIC")), "bicubic");
}

TEST(RandomCropFused, CroppingStraightFromTheImageEqualsPadThenCrop) {
  // The fused uint8 path (contiguous batch, constant padding) against the general one (a non-contiguous
  // view of the same batch goes through pad() then crop), with uneven padding and a fill.
  auto x = torch::randint(0, 256, {6, 3, 9, 11}, torch::kInt64).to(torch::kUInt8);
  auto strided = x.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});
  ASSERT_FALSE(strided.is_contiguous());
  for (std::vector<int64_t> padding : {std::vector<int64_t>{4}, {1, 5}, {0, 2, 7, 3}}) {
    birdplane::transforms::RandomCrop crop(
        birdplane::transforms::RandomCropOptions(std::vector<int64_t>{8, 10}).padding(padding).fill(7));
    ASSERT_TRUE(crop.fused_constant_path(x));
    ASSERT_FALSE(crop.fused_constant_path(strided));
    auto g1 = at::make_generator<at::CPUGeneratorImpl>(5), g2 = at::make_generator<at::CPUGeneratorImpl>(5);
    EXPECT_TRUE(torch::equal(crop.forward(x, g1), crop.forward(strided, g2))) << "padding size " << padding.size();
  }
}

TEST(RandomHorizontalFlipFast, ByteRowsEqualTheTensorFlipAtAnyWidth) {
  // The uint8 path (eight bytes at a time, then a tail) against functional::hflip per image, at
  // widths below, at and above a multiple of eight.
  for (int64_t w : {5, 8, 13, 32}) {
    auto x = torch::randint(0, 256, {7, 3, 4, w}, torch::kInt64).to(torch::kUInt8);
    const std::vector<bool> flags = {true, false, true, true, false, false, true};
    auto out = birdplane::transforms::RandomHorizontalFlip().apply(x, flags);
    for (int64_t i = 0; i < 7; ++i) {
      auto expected = flags[static_cast<size_t>(i)] ? F::hflip(x[i]) : x[i];
      ASSERT_TRUE(torch::equal(out[i], expected)) << "width " << w << ", image " << i;
    }
  }
}
