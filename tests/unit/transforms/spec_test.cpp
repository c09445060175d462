#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/spec.h"
#include "support/expect_error.h"

using namespace birdplane;
using birdplane::fixtures::expect_error;

TEST(AugmentSpec, AliasesAndLongFormsGiveTheSameImages) {
  auto x = torch::randint(0, 256, {8, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  auto a = transforms::parse_augment("crop, flip");
  auto b = transforms::parse_augment("RandomCrop(32, padding=4), RandomHorizontalFlip(p=0.5)");
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(3), g2 = at::make_generator<at::CPUGeneratorImpl>(3);
  auto ya = a(x, g1), yb = b(x, g2);
  EXPECT_EQ(ya.sizes(), x.sizes());
  EXPECT_TRUE(torch::equal(ya, yb));
  EXPECT_FALSE(torch::equal(ya, x));  // 8 images, padding 4: something moved
  // The batch equals the per-image transforms with the same draws, in the same order.
  auto g3 = at::make_generator<at::CPUGeneratorImpl>(3);
  std::vector<transforms::RandomCrop::Params> params;
  for (int i = 0; i < 8; ++i) params.push_back(transforms::RandomCrop::get_params(g3, 40, 40, 32, 32));
  auto flips = transforms::RandomHorizontalFlip::get_params(g3, 8, 0.5);
  for (int i = 0; i < 8; ++i) {
    auto one = transforms::RandomCrop(32, 4).apply(x[i], {params[i]});
    one = transforms::RandomHorizontalFlip().apply(one, {flips[i]});
    EXPECT_TRUE(torch::equal(ya[i], one)) << "image " << i;
  }
  auto id = transforms::parse_augment("  ");
  EXPECT_TRUE(torch::equal(id(x, g1), x));
}

TEST(AugmentSpec, ErrorsPointAtTheSpotAndSayWhatIsAllowed) {
  expect_error([] { transforms::parse_augment("RandomCrop(32, padding=4"); }, {"augment: ", "column 25", "')'"});
  expect_error([] { transforms::parse_augment("Blur(3)"); }, {"unknown transform 'Blur'", "column 1", "RandomCrop"});
  expect_error([] { transforms::parse_augment("crop, RandomCrop(32, padding=-1)"); }, {"padding", "column 7"});
  expect_error([] { transforms::parse_augment("flip(p=1.5)"); }, {"p is 1.5", "between 0 and 1"});
  expect_error([] { transforms::parse_augment("flip(q=1)"); }, {"unexpected argument 'q'"});
  expect_error([] { transforms::parse_augment("crop flip"); }, {"column 6", "','"});
}

TEST(AugmentSpec, NestedListsWordsAndShapeChecks) {
  auto x = torch::randint(0, 256, {4, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto t = transforms::parse_augment(
      "RandomApply([RandomCrop(32, padding=(2, 3), padding_mode='reflect'), flip], p=1.0), "
      "RandomAffine(degrees=0, translate=(0.1, 0.1), interpolation=InterpolationMode.NEAREST)");
  auto y = t(x, gen);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kUInt8);
  // A pipeline that changes the batch's size or dtype is refused, naming --augment.
  auto resize = transforms::parse_augment("Resize(16)");
  expect_error([&] { resize(x, gen); }, {"augment: ", "uint8", "same size"});
  expect_error([] { transforms::parse_transforms("RandomApply([Blur(3)])", "--check"); },
               {"--check", "unknown transform 'Blur'", "column 14"});
  expect_error([] { transforms::parse_transforms("GaussianBlur(4)"); }, {"kernel", "4"});
  expect_error([] { transforms::parse_transforms("Pad(-1)"); }, {"Pad", "-1"});
  expect_error([] { transforms::parse_transforms("RandomCrop(32, padding_mode='mirror')"); }, {"mirror", "reflect"});
  expect_error([] { transforms::parse_transforms("RandomCrop(32, 'a)"); }, {"not closed"});
  EXPECT_TRUE(transforms::parse_transforms("")->repr().find("Compose") != std::string::npos);
}
