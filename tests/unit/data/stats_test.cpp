#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/stats.h"
#include "support/fixtures.h"

using namespace birdplane;

TEST(ChannelStats, EqualsTorchsFloat64MeanAndUnbiasedStd) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto imgs = torch::randint(0, 256, {37, 3, 9, 11}, gen, torch::kInt64).to(torch::kUInt8);
  auto s = data::channel_stats(imgs);
  auto x = imgs.to(torch::kFloat64).div(255.0).permute({1, 0, 2, 3}).reshape({3, -1});
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(s.mean[c], x[c].mean().item<double>(), 1e-12);
    EXPECT_NEAR(s.std[c], x[c].std().item<double>(), 1e-12);  // unbiased by default
  }
  EXPECT_EQ(s.pixels_per_channel, 37 * 9 * 11);
  EXPECT_THROW(data::channel_stats(torch::zeros({2, 3, 4, 4})), Error);
}

TEST(ChannelStatsReal, MatchesTheBooksRecipeOnTheRealFiles) {
  // Whatever copy of CIFAR-10 $BIRDPLANE_DATA names: the streaming histogram, the statistics gathered
  // while reading a class subset, and LibTorch's float64 mean and unbiased std over every pixel after
  // ToTensor (the book's torch.stack(...).view(3, -1).mean(dim=1)) must all agree.
  auto dir = fixtures::real_data_dir();
  if (dir.empty()) GTEST_SKIP() << "BIRDPLANE_DATA is not set to a complete CIFAR-10 folder";
  auto train = data::read_cifar10(dir, data::Split::kTrain);
  const auto s = data::channel_stats(train.images());
  data::ChannelStats gathered;
  data::read_cifar10(dir, data::Split::kTrain, {"airplane", "bird"}, &gathered);
  EXPECT_EQ(s.pixels_per_channel, 50000 * 32 * 32);
  for (int c = 0; c < 3; ++c) {
    auto x = train.images().select(1, c).to(torch::kFloat64).div(255.0);
    EXPECT_NEAR(s.mean[c], x.mean().item<double>(), 1e-9) << "channel " << c;
    EXPECT_NEAR(s.std[c], x.std().item<double>(), 1e-9) << "channel " << c;
    EXPECT_NEAR(gathered.mean[c], s.mean[c], 1e-12) << "channel " << c;
    EXPECT_NEAR(gathered.std[c], s.std[c], 1e-12) << "channel " << c;
    // Any natural-image collection: means near the middle, spreads well inside [0, 0.5].
    EXPECT_GT(s.mean[c], 0.3);
    EXPECT_LT(s.mean[c], 0.7);
    EXPECT_GT(s.std[c], 0.1);
    EXPECT_LT(s.std[c], 0.4);
  }
}
