// Automatic augmentation policies written as spec strings: they parse, run on a uint8 batch with a
// generator, equal the classes they name, and bad values give errors naming the spot.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/autoaugment.h"
#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/spec.h"
#include "support/expect_error.h"
#include "support/transform_checks.h"

using namespace birdplane;
using fixtures::expect_error;

TEST(AutoSpec, EveryPolicyParsesAndKeepsAUint8Batch) {
  auto x = torch::randint(0, 256, {6, 3, 16, 16}, torch::kInt64).to(torch::kByte);
  using namespace transforms;
  using std::make_shared;
  using Policy = AutoAugmentPolicy;
  constexpr auto kNearest = functional::InterpolationMode::kNearest;
  constexpr auto kBilinear = functional::InterpolationMode::kBilinear;
  const std::vector<fixtures::SpecCase> specs = {
      {"AutoAugment()", make_shared<AutoAugment>()},
      {"AutoAugment(CIFAR10)", make_shared<AutoAugment>(Policy::kCifar10)},
      {"AutoAugment(policy=AutoAugmentPolicy.CIFAR10)", make_shared<AutoAugment>(Policy::kCifar10)},
      {"AutoAugment(policy=svhn, interpolation=bilinear, fill=[1, 2, 3])",
       make_shared<AutoAugment>(Policy::kSvhn, kBilinear, std::vector<double>{1, 2, 3})},
      {"AutoAugment(IMAGENET, nearest, 128)",
       make_shared<AutoAugment>(Policy::kImageNet, kNearest, std::vector<double>{128})},
      {"RandAugment()", make_shared<RandAugment>()},
      {"RandAugment(num_ops=3, magnitude=20, fill=0)",
       make_shared<RandAugment>(3, 20, 31, kNearest, std::vector<double>{0})},
      {"RandAugment(1, 5, 11, bilinear)", make_shared<RandAugment>(1, 5, 11, kBilinear)},
      {"TrivialAugmentWide()", make_shared<TrivialAugmentWide>()},
      {"TrivialAugmentWide(num_magnitude_bins=15, interpolation=InterpolationMode.BILINEAR)",
       make_shared<TrivialAugmentWide>(15, kBilinear)},
      {"AugMix()", make_shared<AugMix>()},
      {"AugMix(severity=10, mixture_width=1, chain_depth=3, alpha=0.5, all_ops=False, fill=[9])",
       make_shared<AugMix>(10, 1, 3, 0.5, false, kBilinear, std::vector<double>{9})},
      {"flip, AutoAugment(CIFAR10), RandomCrop(16, padding=2)",
       make_shared<Compose>(std::vector<TransformPtr>{make_shared<RandomHorizontalFlip>(0.5),
                                                      make_shared<AutoAugment>(Policy::kCifar10),
                                                      make_shared<RandomCrop>(16, 2)})},
  };
  fixtures::expect_specs_keep_uint8_batches(specs, x);
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(4), g2 = at::make_generator<at::CPUGeneratorImpl>(4);
  auto a = transforms::parse_transforms("AutoAugment(policy=AutoAugmentPolicy.CIFAR10), AugMix(severity=5)")->forward(x, g1);
  auto b = transforms::AugMix(5).forward(transforms::AutoAugment(transforms::AutoAugmentPolicy::kCifar10).forward(x, g2), g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(transforms::parse_transforms("TrivialAugmentWide(7)")->repr(),
            "Compose(\n    TrivialAugmentWide(num_magnitude_bins=7, interpolation=nearest, fill=None)\n)");
}

TEST(AutoSpec, BadValuesNameTheSpotAndWhatIsAllowed) {
  expect_error([] { transforms::parse_augment("AutoAugment(policy=CIFAR100)"); },
               {"augment: ", "AutoAugment", "column 1", "policy is 'CIFAR100'", "IMAGENET, CIFAR10, SVHN"});
  expect_error([] { transforms::parse_augment("AutoAugment(interpolation=bicubic)"); },
               {"interpolation is 'bicubic'", "nearest, bilinear"});
  expect_error([] { transforms::parse_augment("flip, RandAugment(magnitude=31)"); },
               {"RandAugment", "column 7", "magnitude is 31", "0 to num_magnitude_bins - 1 = 30"});
  expect_error([] { transforms::parse_augment("RandAugment(magnitude=-1)"); }, {"magnitude", "0 or more", "-1"});
  expect_error([] { transforms::parse_augment("RandAugment(num_ops=-2)"); }, {"num_ops", "0 or more", "-2"});
  expect_error([] { transforms::parse_augment("RandAugment(num_magnitude_bins=5, magnitude=5)"); },
               {"magnitude is 5", "0 to num_magnitude_bins - 1 = 4"});
  expect_error([] { transforms::parse_augment("TrivialAugmentWide(num_magnitude_bins=1)"); },
               {"num_magnitude_bins", "2 or more"});
  expect_error([] { transforms::parse_augment("AugMix(severity=11)"); }, {"AugMix", "severity is 11", "1 to 10"});
  expect_error([] { transforms::parse_augment("AugMix(severity=0)"); }, {"severity", "1 or more"});
  expect_error([] { transforms::parse_augment("AugMix(mixture_width=0)"); }, {"mixture_width", "1 or more"});
  expect_error([] { transforms::parse_augment("AugMix(alpha=0)"); }, {"alpha is 0", "positive"});
  expect_error([] { transforms::parse_augment("AugMix(alpha=-1.5)"); }, {"alpha is -1.5"});
  expect_error([] { transforms::parse_augment("AugMix(width=2)"); }, {"unexpected argument 'width'"});
  expect_error([] { transforms::parse_augment("AugMix(fill=[])"); }, {"fill"});
}
