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

TEST(ChannelStatsReal, MatchesTheBooksRecipeOnTheSharedFiles) {
  auto dir = fixtures::real_data_dir();
  if (dir.empty()) GTEST_SKIP() << "BIRDPLANE_DATA is not set to a complete CIFAR-10 folder";
  auto s = data::channel_stats(data::Cifar10(dir, data::Split::kTrain).images());
  // ../shared/data is rebuilt from JPEGs: its README gives these figures (official ones differ).
  const double mean[] = {0.4913, 0.4821, 0.4465}, std[] = {0.2454, 0.2428, 0.2607};
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(s.mean[c], mean[c], 5e-5) << "channel " << c;
    EXPECT_NEAR(s.std[c], std[c], 5e-5) << "channel " << c;
  }
}
