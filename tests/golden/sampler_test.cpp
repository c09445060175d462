// How an epoch is shared out among ranks, against PyTorch's DistributedSampler
// (tests/golden/data/sampler.pt, written by tools/golden/sampler.py).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/batch_loader.h"
#include "support/fixtures.h"
#include "support/golden.h"

using namespace birdplane;

TEST(GoldenSampler, SharesMatchDistributedSampler) {
  fixtures::Golden g("sampler.pt");
  int checked = 0;
  for (const auto& [n, world] : std::vector<std::pair<int64_t, int64_t>>{
           {10, 4}, {12, 3}, {3, 5}, {1, 2}, {7, 7}, {1000, 3}, {5, 1}}) {
    for (int64_t rank = 0; rank < world; ++rank) {
      const auto expected = g[fmt::format("n{}_w{}_r{}", n, world, rank)];
      const auto got = data::shard_order(torch::arange(n, torch::kInt64), rank, world);
      EXPECT_TRUE(torch::equal(got, expected)) << "n " << n << " world " << world << " rank " << rank << ": got "
                                               << got << " expected " << expected;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4 + 3 + 5 + 2 + 7 + 3 + 1);
}

// The rule the equivalence with one process rests on: batch k of every rank together is batch k of a
// single process with world times the batch size.
TEST(GoldenSampler, RanksBatchesTogetherAreOneProcesssBatch) {
  auto set = data::ImageSet(torch::randint(0, 255, {96, 3, 4, 4}, torch::kUInt8), torch::arange(96) % 2,
                            {"a", "b"});
  data::BatchLoader one(set, data::BatchLoaderOptions(16).seed(5).background(false), nullptr);
  data::BatchLoader r0(set, data::BatchLoaderOptions(8).seed(5).background(false).shard(0, 2), nullptr);
  data::BatchLoader r1(set, data::BatchLoaderOptions(8).seed(5).background(false).shard(1, 2), nullptr);
  EXPECT_EQ(r0.size(), 48);
  EXPECT_EQ(r0.batches_per_epoch(), one.batches_per_epoch());
  for (int64_t epoch : {0, 3}) {
    one.start_epoch(epoch);
    r0.start_epoch(epoch);
    r1.start_epoch(epoch);
    while (auto b = one.next()) {
      auto a = r0.next(), c = r1.next();
      ASSERT_TRUE(a && c);
      auto joined = torch::cat({a->images, c->images});
      auto sorted_one = std::get<0>(b->images.reshape({16, -1}).to(torch::kInt).sum(1).sort());
      auto sorted_joined = std::get<0>(joined.reshape({16, -1}).to(torch::kInt).sum(1).sort());
      EXPECT_TRUE(torch::equal(sorted_one, sorted_joined)) << "epoch " << epoch << " batch " << b->index;
    }
  }
}
