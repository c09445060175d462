// Automatic augmentation classes: bad options and inputs give errors naming the transform and the
// value, a batch equals the per-image loop on one generator, and repr() reads like torchvision's.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/autoaugment.h"
#include "support/expect_error.h"
#include "support/transform_checks.h"

using namespace birdplane;
using fixtures::expect_error;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;

namespace {
using fixtures::seeded;
at::Tensor batch(int64_t n, int64_t c = 3) { return torch::randint(0, 256, {n, c, 12, 14}, torch::kInt64).to(torch::kByte); }
}  // namespace

TEST(AutoTransforms, ConstructorsRejectBadOptions) {
  expect_error([] { T::RandAugment(-1); }, {"RandAugment", "num_ops is -1", "0 or more"});
  expect_error([] { T::RandAugment(2, 31); }, {"RandAugment", "magnitude is 31", "0 to num_magnitude_bins - 1 = 30"});
  expect_error([] { T::RandAugment(2, -1); }, {"magnitude is -1"});
  expect_error([] { T::RandAugment(2, 0, 1); }, {"num_magnitude_bins is 1", "2 or more"});
  expect_error([] { T::TrivialAugmentWide(0); }, {"TrivialAugmentWide", "num_magnitude_bins is 0"});
  expect_error([] { T::AugMix(0); }, {"AugMix", "severity is 0", "1 to 10"});
  expect_error([] { T::AugMix(11); }, {"severity is 11"});
  expect_error([] { T::AugMix(3, 0); }, {"AugMix", "mixture_width is 0", "1 or more"});
  expect_error([] { T::AugMix(3, 3, -1, 0.0); }, {"AugMix", "alpha is 0", "positive"});
  expect_error([] { T::AutoAugment(T::AutoAugmentPolicy::kCifar10, F::InterpolationMode::kBicubic); },
               {"AutoAugment", "interpolation bicubic", "nearest, bilinear"});
  expect_error([] { T::auto_augment_policy_from_string("cifar100"); }, {"policy \"cifar100\"", "IMAGENET, CIFAR10, SVHN"});
  expect_error([] { T::augment_op_from_string("Blur"); }, {"\"Blur\"", "ShearX"});
  EXPECT_EQ(T::auto_augment_policy_from_string("AutoAugmentPolicy.CIFAR10"), T::AutoAugmentPolicy::kCifar10);
  EXPECT_EQ(T::auto_augment_policy_from_string("svhn"), T::AutoAugmentPolicy::kSvhn);
}

TEST(AutoTransforms, InputsMustBeUint8ImagesWithFittingFill) {
  auto gen = seeded(1);
  T::TrivialAugmentWide t;
  expect_error([&] { t.forward(batch(2).to(torch::kFloat), gen); }, {"TrivialAugmentWide", "uint8", "Float"});
  expect_error([&] { t.forward(torch::zeros({5, 5}, torch::kByte), gen); }, {"[C,H,W] or a batch", "2 dims"});
  expect_error([&] { t.forward(torch::zeros({4, 5, 5}, torch::kByte), gen); }, {"1 or 3 channels, got 4"});
  T::AutoAugment aa(T::AutoAugmentPolicy::kSvhn, F::InterpolationMode::kNearest, {1, 2});
  expect_error([&] { aa.forward(batch(2), gen); }, {"AutoAugment", "fill has 2 values"});
}

TEST(AutoTransforms, BatchEqualsPerImageCallsOnOneGenerator) {
  auto x = batch(9);
  auto gray = batch(5, 1);
  const std::vector<std::shared_ptr<T::Transform>> all = {
      std::make_shared<T::AutoAugment>(T::AutoAugmentPolicy::kCifar10),
      std::make_shared<T::AutoAugment>(T::AutoAugmentPolicy::kImageNet, F::InterpolationMode::kBilinear,
                                       std::vector<double>{7}),
      std::make_shared<T::AutoAugment>(T::AutoAugmentPolicy::kSvhn),
      std::make_shared<T::RandAugment>(),
      std::make_shared<T::RandAugment>(4, 30, 31, F::InterpolationMode::kBilinear, std::vector<double>{1, 2, 3}),
      std::make_shared<T::TrivialAugmentWide>(),
      std::make_shared<T::AugMix>(),
      std::make_shared<T::AugMix>(10, 4, 2, 0.3, false, F::InterpolationMode::kNearest),
  };
  for (const auto& t : all) {
    for (const auto& input : {x, gray}) {
      if (input.size(1) == 1 && t->repr().find("1.0, 2.0") != std::string::npos) continue;  // 3-value fill
      auto g1 = seeded(5), g2 = seeded(5);
      auto together = t->forward(input, g1);
      std::vector<at::Tensor> singles;
      for (int64_t i = 0; i < input.size(0); ++i) singles.push_back(t->forward(input[i], g2));
      EXPECT_TRUE(torch::equal(together, torch::stack(singles))) << t->repr();
      EXPECT_EQ(together.scalar_type(), torch::kByte);
      // Both generators are at the same point afterwards.
      EXPECT_EQ(T::AutoAugment::get_params(g1, 25).policy_id, T::AutoAugment::get_params(g2, 25).policy_id);
    }
  }
}

TEST(AutoTransforms, ReprReadsLikeTorchvision) {
  EXPECT_EQ(T::AutoAugment(T::AutoAugmentPolicy::kCifar10).repr(),
            "AutoAugment(policy=AutoAugmentPolicy.CIFAR10, interpolation=nearest, fill=None)");
  EXPECT_EQ(T::RandAugment(2, 9, 31, F::InterpolationMode::kNearest, {1, 2, 3}).repr(),
            "RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31, interpolation=nearest, fill=[1.0, 2.0, 3.0])");
  EXPECT_EQ(T::TrivialAugmentWide().repr(), "TrivialAugmentWide(num_magnitude_bins=31, interpolation=nearest, fill=None)");
  EXPECT_EQ(T::AugMix().repr(),
            "AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0, all_ops=True, interpolation=bilinear, "
            "fill=None)");
}

TEST(AutoTransforms, ApplyOpIdentityAndZeroMagnitudeShearKeepTheImage) {
  auto x = batch(2);
  EXPECT_TRUE(torch::equal(F::apply_op(x, T::AugmentOp::kIdentity, 5.0), x));
  EXPECT_TRUE(torch::equal(F::apply_op(x, T::AugmentOp::kShearX, 0.0), x));
  EXPECT_TRUE(torch::equal(F::apply_op(x, T::AugmentOp::kBrightness, 0.0), x));
  EXPECT_EQ(T::to_string(T::augment_op_from_string("AutoContrast")), "AutoContrast");
}
