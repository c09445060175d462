// The class-balanced sampler: each epoch's indices drawn with replacement by weight, as
// WeightedRandomSampler draws them (torch.multinomial), seeded per epoch.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "birdplane/data/batch_loader.h"
#include "support/expect_error.h"

using namespace birdplane;

TEST(WeightedSampler, BalancedWeightsDrawEveryClassEquallyOften) {
  // 90 images of class 0, 10 of class 1.
  auto labels = at::cat({at::zeros({90}, at::kLong), at::ones({10}, at::kLong)});
  const auto w = data::class_balanced_weights(labels, 2);
  EXPECT_DOUBLE_EQ(w[0].item<double>(), 1.0 / 90);
  EXPECT_DOUBLE_EQ(w[99].item<double>(), 1.0 / 10);
  int64_t ones = 0, total = 0;
  for (int64_t epoch = 0; epoch < 200; ++epoch) {
    const auto order = data::weighted_epoch_order(w, 7, epoch);
    ASSERT_EQ(order.numel(), 100);
    ones += labels.index_select(0, order).sum().item<int64_t>();
    total += order.numel();
  }
  // Half the draws are class 1 (binomial: 20,000 draws, standard deviation 0.0035).
  EXPECT_NEAR(static_cast<double>(ones) / static_cast<double>(total), 0.5, 0.02);
  // Seeded: the same epoch draws the same indices, another epoch others.
  EXPECT_TRUE(at::equal(data::weighted_epoch_order(w, 7, 3), data::weighted_epoch_order(w, 7, 3)));
  EXPECT_FALSE(at::equal(data::weighted_epoch_order(w, 7, 3), data::weighted_epoch_order(w, 7, 4)));
  fixtures::expect_error([] { data::class_balanced_weights(at::zeros({5}, at::kLong), 2); }, {"balanced_sampler"});
}

TEST(WeightedSampler, TheLoaderDrawsByTheWeights) {
  auto images = at::zeros({6, 1, 2, 2}, at::kByte);
  auto labels = at::arange(6, at::kLong);
  data::ImageSet set(images, labels, {"a", "b", "c", "d", "e", "f"});
  // Only images 2 and 5 have weight: every batch holds only them.
  auto w = at::zeros({6}, at::kDouble);
  w[2] = 1;
  w[5] = 3;
  data::BatchLoader loader(set, data::BatchLoaderOptions(3).seed(1).background(false).sample_weights(w), nullptr);
  int64_t twos = 0, fives = 0;
  for (int64_t epoch = 0; epoch < 100; ++epoch) {
    loader.start_epoch(epoch);
    while (auto b = loader.next()) {
      for (int64_t i = 0; i < b->labels.numel(); ++i) {
        const auto l = b->labels[i].item<int64_t>();
        ASSERT_TRUE(l == 2 || l == 5) << l;
        (l == 2 ? twos : fives) += 1;
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(fives) / static_cast<double>(twos + fives), 0.75, 0.04);
  fixtures::expect_error(
      [&] { data::BatchLoader(set, data::BatchLoaderOptions(3).sample_weights(at::ones({4}, at::kDouble)), nullptr); },
      {"4", "6"});
}
