// Two MLPs with the same initial weights, for tests that train one way and another and compare.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include <torch/torch.h>

#include "birdplane/nn/mlp.h"

namespace birdplane::fixtures {

inline std::pair<std::shared_ptr<nn::Mlp>, std::shared_ptr<nn::Mlp>> twin_mlps(const nn::MlpOptions& o, uint64_t seed) {
  torch::manual_seed(seed);
  auto a = nn::make_mlp(o);
  auto b = nn::make_mlp(o);
  torch::NoGradGuard no_grad;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  return {a, b};
}

}  // namespace birdplane::fixtures
