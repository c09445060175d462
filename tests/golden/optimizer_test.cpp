// Optimizer updates over parameter groups against torch.optim (tests/golden/data/optimizers.pt, written
// by tools/golden/optimizers.py): twenty steps of SGD with Nesterov momentum, Adam and AdamW, with no
// weight decay on 1-D parameters and a learning-rate multiplier for the head, each within 1e-6.
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/optimizer.h>

#include "birdplane/train/optim.h"
#include "support/golden.h"

using namespace birdplane;
using train::OptimizerConfig;
using train::OptimizerKind;

namespace {

const std::vector<std::pair<std::string, std::vector<int64_t>>> kParams = {
    {"0.weight", {4, 3}}, {"0.bias", {4}}, {"2.weight", {2, 4}}, {"2.bias", {2}}};

// Splits a flat row (every parameter in kParams order) into the parameters' shapes.
std::vector<at::Tensor> unflatten(const at::Tensor& flat) {
  std::vector<at::Tensor> out;
  int64_t at = 0;
  for (const auto& [name, shape] : kParams) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    out.push_back(flat.slice(0, at, at + n).reshape(shape).clone());
    at += n;
  }
  return out;
}

void expect_updates(const std::string& name, const OptimizerConfig& config, size_t expected_groups) {
  fixtures::Golden g("optimizers.pt");
  std::vector<std::pair<std::string, at::Tensor>> named;
  auto init = unflatten(g["init"]);
  for (size_t i = 0; i < kParams.size(); ++i) named.emplace_back(kParams[i].first, init[i].set_requires_grad(true));
  const auto groups = train::parameter_groups(config, named);
  EXPECT_EQ(groups.size(), expected_groups) << name;
  auto optimizer = train::make_optimizer(config, groups);
  const auto grads = g["grads"], expected = g[name];
  ASSERT_EQ(expected.size(0), 20);
  for (int64_t k = 0; k < 20; ++k) {
    const auto grad = unflatten(grads[k]);
    for (size_t i = 0; i < named.size(); ++i) named[i].second.mutable_grad() = grad[i].clone();
    optimizer->step();
    const auto want = unflatten(expected[k]);
    for (size_t i = 0; i < named.size(); ++i) {
      const double diff = (named[i].second.detach() - want[i]).abs().max().item<double>();
      EXPECT_LE(diff, 1e-6) << name << " step " << k + 1 << " " << named[i].first;
    }
  }
}

}  // namespace

TEST(GoldenOptimizer, SgdNesterovWithoutDecayOnBiases) {
  OptimizerConfig c;
  c.lr = 0.05;
  c.momentum = 0.9;
  c.nesterov = true;
  c.weight_decay = 5e-4;
  c.no_decay_bias_norm = true;
  expect_updates("sgd_nesterov_no_decay", c, 2);
}

TEST(GoldenOptimizer, AdamWithHeadMultiplier) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdam;
  c.weight_decay = 1e-3;
  c.head_lr_multiplier = 10;
  expect_updates("adam_head", c, 2);
}

TEST(GoldenOptimizer, AdamW) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdamW;
  c.weight_decay = 0.05;
  expect_updates("adamw", c, 1);
}

TEST(GoldenOptimizer, AdamWFourGroups) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdamW;
  c.lr = 3e-3;
  c.weight_decay = 0.1;
  c.no_decay_bias_norm = true;
  c.head_lr_multiplier = 4;
  c.beta1 = 0.8;
  c.beta2 = 0.95;
  c.eps = 1e-6;
  expect_updates("adamw_no_decay_head", c, 4);
}

TEST(ParameterGroups, HeadIsTheLastParametersModuleAndGroupsNameTheirKeys) {
  std::vector<std::pair<std::string, at::Tensor>> named = {{"conv1.weight", at::zeros({2, 1, 3, 3})},
                                                           {"conv1.bias", at::zeros({2})},
                                                           {"bn.weight", at::zeros({2})},
                                                           {"fc2.weight", at::zeros({3, 2})},
                                                           {"fc2.bias", at::zeros({3})}};
  EXPECT_EQ(train::head_module(named), "fc2");
  EXPECT_EQ(train::head_module({}), "");
  OptimizerConfig c;
  c.weight_decay = 0.1;
  c.no_decay_bias_norm = true;
  c.head_lr_multiplier = 2;
  const auto groups = train::parameter_groups(c, named);
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].keys, std::vector<std::string>{"conv1.weight"});
  EXPECT_EQ(groups[1].keys, (std::vector<std::string>{"conv1.bias", "bn.weight"}));
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[2].keys, std::vector<std::string>{"fc2.weight"});
  EXPECT_DOUBLE_EQ(groups[2].lr, 0.02);
  EXPECT_EQ(groups[3].keys, std::vector<std::string>{"fc2.bias"});
  // Without weight decay there is nothing to exempt: one group, as before parameter groups.
  c.weight_decay = 0;
  c.head_lr_multiplier = 1;
  EXPECT_EQ(train::parameter_groups(c, named).size(), 1u);
}
