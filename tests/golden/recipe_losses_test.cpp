// Label smoothing, class weights and gradient clipping against PyTorch (tests/golden/data/
// recipe_losses.pt, written by tools/golden/recipe_losses.py), and the class weights' settings.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>

#include "birdplane/nn/losses.h"
#include "birdplane/train/run_spec.h"
#include "support/expect_error.h"
#include "support/golden.h"

using namespace birdplane;

TEST(GoldenRecipeLosses, SmoothingAndWeightsMatchCrossEntropyOnLogitsAndLogProbs) {
  fixtures::Golden g("recipe_losses.pt");
  const auto logits = g["logits"], target = g["target"], weight = g["weight"];
  struct Case {
    std::string name;
    nn::LossOptions options;
  };
  std::vector<Case> cases(3);
  cases[0] = {"smooth", {0.1, at::Tensor()}};
  cases[1] = {"weighted", {0.0, weight}};
  cases[2] = {"smooth_weighted", {0.2, weight}};
  for (const auto& c : cases) {
    for (bool log_probs : {false, true}) {
      auto x = logits.clone().set_requires_grad(true);
      // A model ending in LogSoftmax gives log-probabilities; its loss (nll) must be the same one.
      auto out = log_probs ? at::log_softmax(x, 1) : x;
      auto loss = nn::compute_loss(log_probs ? nn::LossKind::kNll : nn::LossKind::kCrossEntropy, out, target,
                                   log_probs, c.options);
      loss.backward();
      EXPECT_NEAR(loss.item<double>(), g[c.name + "/loss"].item<double>(), 1e-6) << c.name << " " << log_probs;
      EXPECT_LE((x.grad() - g[c.name + "/grad"]).abs().max().item<double>(), 1e-6) << c.name << " " << log_probs;
    }
  }
  // Without options the loss is the plain one (the options change it).
  const auto plain = nn::compute_loss(nn::LossKind::kCrossEntropy, logits, target, false);
  EXPECT_GT(std::abs(plain.item<double>() - g["smooth/loss"].item<double>()), 1e-3);
  fixtures::expect_error(
      [&] { nn::compute_loss(nn::LossKind::kMse, logits, target, false, cases[0].options); }, {"mse", "smoothing"});
}

TEST(GoldenRecipeLosses, GradientClippingMatchesTorch) {
  fixtures::Golden g("recipe_losses.pt");
  for (const std::string kind : {"norm", "value"}) {
    std::vector<at::Tensor> params = {at::zeros({4, 3}).set_requires_grad(true), at::zeros({4}).set_requires_grad(true)};
    params[0].mutable_grad() = g["clip_in/0"].clone();
    params[1].mutable_grad() = g["clip_in/1"].clone();
    if (kind == "norm") {
      torch::nn::utils::clip_grad_norm_(params, 1.5);
    } else {
      torch::nn::utils::clip_grad_value_(params, 0.7);
    }
    for (int i = 0; i < 2; ++i) {
      const auto want = g[fmt::format("clip_{}/{}", kind, i)];
      EXPECT_LE((params[i].grad() - want).abs().max().item<double>(), 1e-6) << kind << " " << i;
      EXPECT_FALSE(at::equal(want, g[fmt::format("clip_in/{}", i)])) << "the case must clip something";
    }
  }
}

TEST(ClassWeights, AutoIsBalancedAndGivenOnesAreChecked) {
  const auto w = train::resolve_class_weights("auto", {10, 30, 20});
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0], 60.0 / 30.0);
  EXPECT_DOUBLE_EQ(w[1], 60.0 / 90.0);
  EXPECT_DOUBLE_EQ(w[2], 60.0 / 60.0);
  EXPECT_EQ(train::resolve_class_weights("", {1, 2}).size(), 0u);
  EXPECT_EQ(train::resolve_class_weights("1,2.5", {4, 4}), (std::vector<double>{1, 2.5}));
  fixtures::expect_error([] { train::resolve_class_weights("1,2", {1, 2, 3}); }, {"class_weights", "2 weights", "3"});
  fixtures::expect_error([] { train::resolve_class_weights("auto", {5, 0}); }, {"class_weights", "class 1"});
  train::TrainingSpec t;
  t.class_weights = "1,-2";
  fixtures::expect_error([&] { t.validate(); }, {"class_weights", "-2"});
  t.class_weights = "";
  t.label_smoothing = 1.0;
  fixtures::expect_error([&] { t.validate(); }, {"label_smoothing", "1"});
  t.label_smoothing = 0.1;
  t.loss = nn::LossKind::kMse;
  fixtures::expect_error([&] { t.validate(); }, {"loss", "mse"});
  t.loss.reset();
  t.clip_grad_norm = -1;
  fixtures::expect_error([&] { t.validate(); }, {"clip_grad_norm", "-1"});
}
