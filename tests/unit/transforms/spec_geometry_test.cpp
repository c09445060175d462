// The geometric transforms written as specs: each parses, runs on a batch with a generator, and
// equals the class built directly; bad values name the spot.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/spec.h"
#include "birdplane/transforms/warp.h"
#include "support/expect_error.h"

using namespace birdplane;
using birdplane::fixtures::expect_error;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;

namespace {

at::Tensor batch() {
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  return torch::randint(0, 256, {4, 3, 24, 28}, g, torch::kInt64).to(torch::kUInt8);
}

at::Tensor run(const T::Transform& t, const at::Tensor& x) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  return t.forward(x, gen);
}

void expect_same(const std::string& spec, const T::Transform& direct) {
  auto x = batch();
  auto parsed = T::parse_transforms(spec);
  auto a = run(*parsed, x), b = run(direct, x);
  ASSERT_EQ(a.sizes(), b.sizes()) << spec;
  EXPECT_TRUE(torch::equal(a, b)) << spec;
}

}  // namespace

TEST(SpecGeometry, EachTransformParsesAndMatchesTheClass) {
  using IM = F::InterpolationMode;
  expect_same("Resize(12)", T::Resize({12}));
  expect_same("Resize([10, 14], interpolation=nearest)", T::Resize({10, 14}, IM::kNearest));
  expect_same("Resize(12, bicubic, max_size=15, antialias=True)", T::Resize({12}, IM::kBicubic, 15, true));
  expect_same("CenterCrop([20, 30])", T::CenterCrop({20, 30}));
  expect_same("Pad([1, 2, 3, 4], 9)", T::Pad({1, 2, 3, 4}, 9));
  expect_same("Pad(3, padding_mode=symmetric)", T::Pad({3}, 0, F::PaddingMode::kSymmetric));
  expect_same("RandomCrop([20, 24], padding=[2, 3], padding_mode=reflect)",
              T::RandomCrop(T::RandomCropOptions({20, 24}).padding({2, 3}).padding_mode(F::PaddingMode::kReflect)));
  expect_same("RandomCrop(30, pad_if_needed=True, fill=4)",
              T::RandomCrop(T::RandomCropOptions(30).pad_if_needed(true).fill(4)));
  expect_same("RandomResizedCrop(16, scale=(0.5, 1.0), interpolation=InterpolationMode.NEAREST)",
              T::RandomResizedCrop({16}, {0.5, 1.0}, {0.75, 4.0 / 3.0}, IM::kNearest));
  expect_same("RandomVerticalFlip(0.4)", T::RandomVerticalFlip(0.4));
  expect_same("RandomRotation(30, bilinear, fill=[1, 2, 3])",
              T::RandomRotation({30}, IM::kBilinear, false, std::nullopt, {1, 2, 3}));
  expect_same("RandomRotation([-10, 20], center=[3, 4])",
              T::RandomRotation({-10, 20}, IM::kNearest, false, std::array<double, 2>{3, 4}));
  expect_same("RandomAffine(15, translate=(0.1, 0.2), scale=(0.9, 1.1), shear=[-5, 5, -2, 2], fill=7)",
              T::RandomAffine({15}, {0.1, 0.2}, {0.9, 1.1}, {-5, 5, -2, 2}, IM::kNearest, {7}));
  expect_same("RandomPerspective(0.3, p=0.8, fill=2)", T::RandomPerspective(0.3, 0.8, IM::kBilinear, {2}));
  expect_same("ElasticTransform(alpha=20.0, sigma=2.0)", T::ElasticTransform({20}, {2}));
  // The crop alias keeps its defaults.
  expect_same("crop", T::RandomCrop(32, 4));
}

TEST(SpecGeometry, AugmentKeepsUint8Batches) {
  auto aug = T::parse_augment("RandomRotation(10), RandomAffine(0, translate=(0.1, 0.1)), RandomVerticalFlip()");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto x = batch();
  auto y = aug(x, gen);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kUInt8);
}

TEST(SpecGeometry, BadValuesNameTheSpot) {
  expect_error([] { T::parse_transforms("Pad(-1)"); }, {"Pad (column 1", "padding", "0 or more"});
  expect_error([] { T::parse_transforms("Resize(0)"); }, {"Resize", "size", "1 or more"});
  expect_error([] { T::parse_transforms("flip, RandomVerticalFlip(p=1.5)"); }, {"column 7", "p is 1.5"});
  expect_error([] { T::parse_transforms("RandomRotation(-5)"); }, {"RandomRotation (column 1", "degrees", "0 or more"});
  expect_error([] { T::parse_transforms("RandomResizedCrop(8, scale=(1.0, 0.5))"); }, {"RandomResizedCrop", "scale", "min <= max"});
  expect_error([] { T::parse_transforms("RandomPerspective(distortion_scale=2)"); }, {"RandomPerspective", "distortion_scale"});
  expect_error([] { T::parse_transforms("Pad(2, padding_mode=wrap)"); }, {"padding_mode is 'wrap'", "reflect"});
  expect_error([] { T::parse_transforms("Resize(8, interpolation=lanczos)"); }, {"interpolation is 'lanczos'"});
  expect_error([] { T::parse_transforms("CenterCrop(8, 9)"); }, {"CenterCrop", "unexpected argument 2"});
  expect_error([] { T::parse_transforms("RandomAffine(5, shaer=3)"); }, {"RandomAffine", "unexpected argument 'shaer'"});
  expect_error([] { T::parse_transforms("ElasticTransform(sigma=[1, 0])"); }, {"ElasticTransform", "sigma"});
  expect_error([] { T::parse_transforms("RandomCrop(8, padding=[1, 2, 3])"); }, {"RandomCrop", "padding", "got 3"});
}
