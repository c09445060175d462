// Weight averaging against AveragedModel with an EMA function and use_buffers=True (tests/golden/data/
// ema.pt, written by tools/golden/ema.py): six updates from a Linear + BatchNorm1d model's tensors.
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "birdplane/train/average.h"
#include "support/golden.h"

using namespace birdplane;

namespace {

// A flat float64 row split into tensors of the given sizes (integer ones as int64, as the buffers are).
std::vector<at::Tensor> split(const at::Tensor& row, const at::Tensor& sizes, const at::Tensor& integer) {
  std::vector<at::Tensor> out;
  int64_t at = 0;
  for (int64_t i = 0; i < sizes.size(0); ++i) {
    const int64_t n = sizes[i].item<int64_t>();
    auto t = row.slice(0, at, at + n).clone();
    out.push_back(integer[i].item<int64_t>() ? t.to(at::kLong) : t.to(at::kFloat));
    at += n;
  }
  return out;
}

}  // namespace

TEST(GoldenEma, MatchesAveragedModelWithBuffers) {
  fixtures::Golden g("ema.pt");
  const auto sizes = g["shapes"], integer = g["integer"], models = g["models"], averages = g["averages"];
  train::WeightAverage ema(split(g["init"], sizes, integer), 0.9);
  for (int64_t k = 0; k < models.size(0); ++k) {
    ema.update(split(models[k], sizes, integer));
    const auto want = split(averages[k], sizes, integer);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(ema.averaged()[i].scalar_type(), want[i].scalar_type());
      EXPECT_LE((ema.averaged()[i].to(at::kDouble) - want[i].to(at::kDouble)).abs().max().item<double>(), 1e-6)
          << "update " << k + 1 << " tensor " << i;
    }
  }
  EXPECT_EQ(ema.n_averaged(), models.size(0));
  // After a restart the next update copies.
  ema.restart();
  ema.update(split(models[0], sizes, integer));
  EXPECT_TRUE(at::equal(ema.averaged()[0], split(models[0], sizes, integer)[0]));
}
