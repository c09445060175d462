// Pad, crop, flips and the RandomCrop / RandomHorizontalFlip draws against torchvision 0.14
// (tests/golden/data/geometry.pt). uint8 geometry must be equal, not close.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/geometry.h"
#include "support/golden.h"

using namespace birdplane;
namespace F = birdplane::transforms::functional;
using birdplane::transforms::RandomCrop;
using birdplane::transforms::RandomHorizontalFlip;

TEST(GoldenGeometry, PadCropAndFlipsAreExact) {
  fixtures::Golden g("geometry.pt");
  auto imgs = g["images"];
  EXPECT_TRUE(torch::equal(F::pad_constant(imgs, 4, 4, 4, 4), g["padded"]));
  EXPECT_TRUE(torch::equal(F::pad_constant(imgs[0], 1, 2, 3, 4, 7), g["pad_fill"]));
  EXPECT_TRUE(torch::equal(F::hflip(imgs), g["hflip"]));
  EXPECT_TRUE(torch::equal(F::vflip(imgs), g["vflip"]));
  for (int64_t i = 0; i < 4; ++i) {
    auto c = F::crop(g["padded"][i], g["tops"][i].item<int64_t>(), g["lefts"][i].item<int64_t>(), 32, 32);
    EXPECT_TRUE(torch::equal(c, g["cropped"][i])) << "image " << i;
  }
}

TEST(GoldenGeometry, RandomParametersFollowTorchvisionsDrawsForTheSameSeed) {
  fixtures::Golden g("geometry.pt");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  for (int64_t i = 0; i < 4; ++i) {
    auto p = RandomCrop::get_params(gen, 40, 40, 32, 32);
    EXPECT_EQ(p.top, g["tops"][i].item<int64_t>()) << "image " << i;
    EXPECT_EQ(p.left, g["lefts"][i].item<int64_t>()) << "image " << i;
  }
  auto gen2 = at::make_generator<at::CPUGeneratorImpl>(43);
  auto flips = RandomHorizontalFlip::get_params(gen2, 4, 0.5);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(flips[i], g["flips"][i].item<bool>()) << "image " << i;
}

TEST(GoldenGeometry, BatchedCropAndFlipEqualTorchvisionPerImage) {
  fixtures::Golden g("geometry.pt");
  RandomCrop crop(32, 4);
  std::vector<RandomCrop::Params> params;
  std::vector<bool> flips;
  for (int64_t i = 0; i < 4; ++i) {
    params.push_back({g["tops"][i].item<int64_t>(), g["lefts"][i].item<int64_t>(), 32, 32});
    flips.push_back(g["flips"][i].item<bool>());
  }
  auto cropped = crop.apply(g["images"], params);
  EXPECT_TRUE(torch::equal(cropped, g["cropped"]));
  auto flipped = RandomHorizontalFlip(0.5).apply(cropped, flips);
  EXPECT_TRUE(torch::equal(flipped, g["crop_then_flip"]));
  // The whole batch with a generator gives the same images as one image at a time with the same draws.
  auto gen_a = at::make_generator<at::CPUGeneratorImpl>(7);
  auto gen_b = at::make_generator<at::CPUGeneratorImpl>(7);
  auto batch = RandomCrop(32, 4, 0, &gen_a)(g["images"]);
  RandomCrop one(32, 4, 0, &gen_b);
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(batch[i], one(g["images"][i]))) << "image " << i;
}

TEST(Geometry, RejectsBadArguments) {
  EXPECT_THROW(RandomCrop(0), Error);
  EXPECT_THROW(RandomCrop(32, -1), Error);
  EXPECT_THROW(RandomHorizontalFlip(1.5), Error);
  EXPECT_THROW(F::crop(torch::zeros({3, 8, 8}), 4, 4, 8, 8), Error);
  EXPECT_THROW(F::pad_constant(torch::zeros({3, 8, 8}), -1, 0, 0, 0), Error);
  EXPECT_EQ(RandomCrop(32, 4).repr(), "RandomCrop(size=(32, 32), padding=4)");
}
