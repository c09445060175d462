#include <cstdlib>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/mlp.h"
#include "train/fused_step.h"
#include "train/linear_kernels.h"
#include "support/mlp_twins.h"

using namespace birdplane;
namespace K = birdplane::train::kernels;

namespace {

// Shapes around every edge the kernels have: image counts around the 16-lane vectors and the
// 64-image passes, input counts around the 16- and 64-wide blocks, output counts around the row
// tiles (6 to 16 rows) and the split between threads.
const std::vector<int64_t> kImages = {1, 5, 16, 17, 33, 64, 70, 130};
const std::vector<int64_t> kInputs = {1, 3, 16, 20, 64, 65, 200};
const std::vector<int64_t> kOutputs = {1, 2, 7, 16, 33};

double tolerance(const at::Tensor& want, int64_t k) {
  // float32 sums of k products in another order than the BLAS's
  return 2e-6 * std::sqrt(static_cast<double>(k)) * (1.0 + want.abs().max().item<double>());
}

class LinearKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!K::available()) GTEST_SKIP() << "this CPU has no AVX-512; the fused step uses ATen here";
  }
};

}  // namespace

TEST_F(LinearKernels, ForwardIsTheTransposedAddmm) {
  torch::manual_seed(3);
  for (int64_t b : kImages)
    for (int64_t k : kInputs)
      for (int64_t o : kOutputs) {
        auto x = torch::randn({b, k}), w = torch::randn({o, k}), bias = torch::randn({o});
        const auto want = at::addmm(bias, x, w.t());
        const auto got = K::linear_forward_t(x, w, bias);
        ASSERT_EQ(got.sizes(), (std::vector<int64_t>{o, b}));
        ASSERT_LE((got.t() - want).abs().max().item<double>(), tolerance(want, k)) << b << "x" << k << " -> " << o;
        const auto no_bias = K::linear_forward_t(x, w, at::Tensor());
        ASSERT_LE((no_bias.t() - at::mm(x, w.t())).abs().max().item<double>(), tolerance(want, k));
      }
}

TEST_F(LinearKernels, UpdateAddsTheScaledGradientProduct) {
  torch::manual_seed(4);
  for (int64_t b : kImages)
    for (int64_t k : kInputs)
      for (int64_t o : kOutputs) {
        auto x = torch::randn({b, k}), w = torch::randn({o, k});
        // g as the step makes it, [B, O], and as a transposed view of an [O, B] tensor.
        for (const auto& g : {torch::randn({b, o}), torch::randn({o, b}).t()}) {
          auto want = w.clone().addmm_(g.t(), x, 1.0, -0.03);
          auto got = w.clone();
          K::linear_update_(got, g, x, -0.03);
          ASSERT_LE((got - want).abs().max().item<double>(), tolerance(want, b)) << b << "x" << k << " -> " << o;
        }
      }
}

TEST_F(LinearKernels, ResultsDoNotDependOnTheThreadCount) {
  torch::manual_seed(5);
  auto x = torch::randn({64, 300}), w = torch::randn({40, 300}), bias = torch::randn({40}), g = torch::randn({64, 40});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = K::linear_forward_t(x, w, bias);
  auto w_one = w.clone();
  K::linear_update_(w_one, g, x, 0.5);
  at::set_num_threads(2);
  const auto two = K::linear_forward_t(x, w, bias);
  auto w_two = w.clone();
  K::linear_update_(w_two, g, x, 0.5);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two));
  EXPECT_TRUE(torch::equal(w_one, w_two));
}

TEST_F(LinearKernels, EmptyInputsAndBadOperands) {
  // No inputs: the output is the bias; no images: nothing changes.
  auto bias = torch::randn({3});
  EXPECT_TRUE(torch::equal(K::linear_forward_t(torch::zeros({4, 0}), torch::zeros({3, 0}), bias),
                           bias.unsqueeze(1).expand({3, 4})));
  auto w = torch::randn({3, 5});
  const auto before = w.clone();
  K::linear_update_(w, torch::zeros({0, 3}), torch::zeros({0, 5}), 1.0);
  EXPECT_TRUE(torch::equal(w, before));
  EXPECT_THROW(K::linear_forward_t(torch::randn({4, 5}), torch::randn({3, 6}), bias), Error);
  EXPECT_THROW(K::linear_forward_t(torch::randn({4, 5}).to(torch::kDouble), torch::randn({3, 5}), bias), Error);
  EXPECT_THROW(K::linear_forward_t(torch::randn({5, 4}).t(), torch::randn({3, 5}), bias), Error);  // not contiguous
  EXPECT_THROW(K::linear_forward_t(torch::randn({4, 5}), torch::randn({3, 5}), torch::randn({2})), Error);
  EXPECT_THROW(K::linear_update_(w, torch::randn({4, 2}), torch::randn({4, 5}), 1.0), Error);
}

TEST_F(LinearKernels, TheFusedStepUsesThemUnlessToldBlas) {
  nn::MlpOptions o;
  o.in_features = 70;
  o.hidden = {20};
  o.out_features = 2;
  auto [a, b] = fixtures::twin_mlps(o, 9);
  train::FusedMlpStep own(*a, 0.1, false);
  ASSERT_EQ(setenv("BIRDPLANE_KERNELS", "blas", 1), 0);
  train::FusedMlpStep blas(*b, 0.1, false);
  unsetenv("BIRDPLANE_KERNELS");
  EXPECT_TRUE(own.own_kernels());
  EXPECT_FALSE(blas.own_kernels());
  EXPECT_FALSE(train::FusedMlpStep(*a, 0.1, true).own_kernels());  // bf16 runs on oneDNN
  for (int i = 0; i < 5; ++i) {
    auto x = torch::randn({33, 70});
    auto y = torch::randint(0, 2, {33}, torch::kInt64);
    const auto ra = own.step(x, y), rb = blas.step(x, y);
    EXPECT_NEAR(ra.loss, rb.loss, 1e-6);
  }
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_LT((pa[i] - pb[i]).abs().max().item<double>(), 1e-6);
}
