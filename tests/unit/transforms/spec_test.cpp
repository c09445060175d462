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
  expect_error([] { transforms::parse_augment("RandomCrop(32, padding=4"); }, {"--augment", "column 25", "')'"});
  expect_error([] { transforms::parse_augment("Blur(3)"); }, {"unknown transform 'Blur'", "column 1", "RandomCrop"});
  expect_error([] { transforms::parse_augment("crop, RandomCrop(32, padding=-1)"); }, {"padding", "column 7"});
  expect_error([] { transforms::parse_augment("flip(p=1.5)"); }, {"p is 1.5", "between 0 and 1"});
  expect_error([] { transforms::parse_augment("flip(q=1)"); }, {"unexpected argument 'q'"});
  expect_error([] { transforms::parse_augment("crop flip"); }, {"column 6", "','"});
}
