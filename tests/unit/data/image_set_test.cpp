// The one labelled image set: any image size and channel count, checked on construction.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/batch_loader.h"
#include "birdplane/data/image_set.h"
#include "support/expect_error.h"

using namespace birdplane;
using birdplane::fixtures::expect_error;

TEST(ImageSet, HoldsAnyImageSizeAndSaysWhereItCameFrom) {
  auto images = torch::arange(6 * 1 * 5 * 7, torch::kInt64).remainder(256).to(torch::kUInt8).view({6, 1, 5, 7});
  auto labels = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt32);
  data::ImageSet set(images, labels, {"x", "y", "z"}, "a test");
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{1, 5, 7}));
  EXPECT_EQ(set.labels().scalar_type(), torch::kInt64);
  EXPECT_EQ(set.source(), "a test");
  auto yz = set.subset({"z", "y"});
  EXPECT_EQ(*yz.size(), 4u);
  EXPECT_EQ(yz.class_names(), (std::vector<std::string>{"z", "y"}));
  EXPECT_TRUE(torch::equal(yz.labels(), torch::tensor({1, 0, 1, 0}, torch::kInt64)));
  EXPECT_EQ(yz.source(), "a test");
  EXPECT_EQ(*set.first(2).size(), 2u);
  // The batch loader serves it as it is: batches of [B,1,5,7].
  data::BatchLoader loader(set, data::BatchLoaderOptions(4).background(false),
                           [](const at::Tensor& x, at::Generator&) { return x; });
  loader.start_epoch(0);
  auto b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->images.sizes(), (std::vector<int64_t>{4, 1, 5, 7}));
}

TEST(ImageSet, RefusesWrongShapesTypesAndLabels) {
  auto images = torch::zeros({3, 3, 4, 4}, torch::kUInt8);
  expect_error([&] { data::ImageSet(images.to(torch::kFloat), torch::zeros({3}), {"a"}); }, {"uint8 [N,C,H,W]"});
  expect_error([&] { data::ImageSet(images[0], torch::zeros({3}), {"a"}); }, {"uint8 [N,C,H,W]"});
  expect_error([&] { data::ImageSet(images, torch::zeros({2}), {"a"}); }, {"labels must be [N]"});
  expect_error([&] { data::ImageSet(images, torch::tensor({0, 1, 2}), {"a", "b"}); }, {"labels must be 0 to 1"});
  expect_error([&] { data::ImageSet(images, torch::tensor({0, -1, 0}), {"a", "b"}); }, {"found -1 to 0"});
  expect_error([&] { data::ImageSet(images, torch::zeros({3}), {}); }, {"at least one class name"});
  data::ImageSet ok(images, torch::zeros({3}), {"a", "b"});
  try {
    ok.subset({"a", "c"});
    FAIL();
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "classes");
    EXPECT_NE(e.problem().find("'c'"), std::string::npos);
  }
}
