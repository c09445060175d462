// Mixup and cutmix against torchvision's reference arithmetic (tests/golden/data/mixing.pt, written by
// tools/golden/mixing.py), the soft-target loss, and the draws: lambda's distribution, seeded batches.
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "birdplane/nn/losses.h"
#include "birdplane/train/mixing.h"
#include "support/expect_error.h"
#include "support/golden.h"

using namespace birdplane;

TEST(GoldenMixing, MixupAndCutmixMatchTheReference) {
  fixtures::Golden g("mixing.pt");
  const auto images = g["images"], labels = g["labels"];
  {
    auto x = images.clone();
    auto t = train::one_hot_targets(labels, 3);
    train::mixup_(x, t, 0.3);
    EXPECT_LE((x - g["mixup/images"]).abs().max().item<double>(), 1e-6);
    EXPECT_LE((t - g["mixup/targets"]).abs().max().item<double>(), 1e-6);
  }
  struct Box {
    const char* name;
    double lambda;
    int64_t cx, cy;
  };
  for (const Box& b : {Box{"cutmix", 0.6, 5, 2}, Box{"cutmix_edge", 0.2, 0, 7}}) {
    auto x = images.clone();
    auto t = train::one_hot_targets(labels, 3);
    const double kept = train::cutmix_(x, t, b.lambda, b.cx, b.cy);
    const std::string n = b.name;
    EXPECT_DOUBLE_EQ(kept, g[n + "/lambda"].item<double>()) << n;
    EXPECT_TRUE(at::equal(x, g[n + "/images"])) << n;
    EXPECT_LE((t - g[n + "/targets"]).abs().max().item<double>(), 1e-6) << n;
  }
}

TEST(GoldenMixing, SoftTargetCrossEntropyWithSmoothing) {
  fixtures::Golden g("mixing.pt");
  auto logits = g["logits"].clone().set_requires_grad(true);
  nn::LossOptions options;
  options.label_smoothing = 0.1;
  auto loss = nn::compute_loss(nn::LossKind::kCrossEntropy, logits, g["mixup/targets"], false, options);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), g["soft_loss"].item<double>(), 1e-6);
  EXPECT_LE((logits.grad() - g["soft_grad"]).abs().max().item<double>(), 1e-6);
}

// lambda ~ Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)); the same seed mixes the same.
TEST(Mixing, LambdaFollowsBetaAndDrawsAreSeeded) {
  train::MixSpec spec;
  spec.mixup_alpha = 0.4;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto labels = at::arange(4, at::kLong).remainder(2);
  double sum = 0, sum_sq = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    auto x = at::zeros({4, 1, 2, 2});
    const auto r = train::mix_batch(x, labels, 2, spec, gen);
    ASSERT_TRUE(r.mixed);
    ASSERT_FALSE(r.cutmix);
    sum += r.lambda;
    sum_sq += r.lambda * r.lambda;
  }
  const double mean = sum / n, var = sum_sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 0.02);
  EXPECT_NEAR(var, 1.0 / (4 * (2 * 0.4 + 1)), 0.01);

  // Both kinds: switch_prob picks cutmix; mix_prob 0 mixes nothing.
  spec.cutmix_alpha = 1.0;
  spec.switch_prob = 0.25;
  int cut = 0;
  for (int i = 0; i < 2000; ++i) {
    auto x = at::zeros({4, 1, 4, 4});
    cut += train::mix_batch(x, labels, 2, spec, gen).cutmix ? 1 : 0;
  }
  EXPECT_NEAR(cut / 2000.0, 0.25, 0.04);
  spec.mix_prob = 0;
  auto x = at::ones({4, 1, 4, 4});
  EXPECT_FALSE(train::mix_batch(x, labels, 2, spec, gen).mixed);

  spec.mix_prob = 1;
  auto a = at::arange(64, at::kFloat).reshape({4, 1, 4, 4}), b = a.clone();
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(9), g2 = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto ra = train::mix_batch(a, labels, 2, spec, g1), rb = train::mix_batch(b, labels, 2, spec, g2);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_TRUE(at::equal(ra.targets, rb.targets));
}

TEST(Mixing, BadSettingsNameTheSetting) {
  train::MixSpec s;
  s.mixup_alpha = -1;
  fixtures::expect_error([&] { s.validate(); }, {"mixup_alpha", "-1"});
  s = {};
  s.mix_prob = 2;
  fixtures::expect_error([&] { s.validate(); }, {"mix_prob", "2"});
  const auto j = train::MixSpec{0.2, 1.0, 0.5, 0.3}.to_json();
  EXPECT_EQ(train::MixSpec::from_json(j).to_json(), j);
  EXPECT_FALSE(train::MixSpec::from_json(nlohmann::json()).enabled());
}
