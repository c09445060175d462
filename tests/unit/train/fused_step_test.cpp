#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/nn/mlp.h"
#include "train/fused_step.h"
#include "birdplane/train/optim.h"
#include "support/mlp_twins.h"

using namespace birdplane;

namespace {

struct Batch {
  at::Tensor x, y;
};

std::vector<Batch> batches(int64_t count, int64_t size, int64_t features, int64_t classes) {
  std::vector<Batch> out;
  for (int64_t i = 0; i < count; ++i)
    out.push_back({torch::randn({size, features}), torch::randint(0, classes, {size}, torch::kInt64)});
  return out;
}

double max_difference(const std::shared_ptr<nn::Mlp>& a, const std::shared_ptr<nn::Mlp>& b) {
  double worst = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  return worst;
}

}  // namespace

TEST(FusedStep, MatchesAutogradAndSgdStepForStep) {
  // Both losses the fused step implements, both activations, one and three hidden layers, and a
  // last batch shorter than the others.
  struct Case {
    std::vector<int64_t> hidden;
    nn::Activation activation;
    bool log_softmax;
  };
  const auto tanh = nn::Activation::kTanh, relu = nn::Activation::kRelu;
  for (const auto& c : {Case{{16}, tanh, true}, Case{{24, 12, 8}, relu, false}, Case{{10, 6}, tanh, false}}) {
    nn::MlpOptions o;
    o.in_features = 20;
    o.hidden = c.hidden;
    o.out_features = 3;
    o.activation = c.activation;
    o.log_softmax = c.log_softmax;
    const auto loss_kind = c.log_softmax ? nn::LossKind::kNll : nn::LossKind::kCrossEntropy;
    auto [reference, fused_model] = fixtures::twin_mlps(o, 7);
    train::OptimizerConfig sgd;
    sgd.lr = 0.05;
    auto optimizer = train::make_optimizer(sgd, reference->parameters());
    train::FusedMlpStep fused(*fused_model, sgd.lr, false);
    auto data = batches(4, 32, 20, 3);
    data.push_back({torch::randn({5, 20}), torch::randint(0, 3, {5}, torch::kInt64)});
    for (size_t i = 0; i < data.size(); ++i) {
      const auto& [x, y] = data[i];
      optimizer->zero_grad();
      auto out = reference->forward(x);
      auto loss = nn::compute_loss(loss_kind, out, y, c.log_softmax);
      loss.backward();
      optimizer->step();
      const int64_t correct = out.argmax(1).eq(y).sum().item<int64_t>();
      const auto r = fused.step(x, y);
      EXPECT_NEAR(r.loss, loss.item<double>(), 1e-6) << nn::to_string(c.activation) << ", step " << i;
      EXPECT_EQ(r.correct, correct) << nn::to_string(c.activation) << ", step " << i;
      ASSERT_LT(max_difference(reference, fused_model), 1e-6) << nn::to_string(c.activation) << ", step " << i;
    }
    EXPECT_GT(max_difference(reference, fixtures::twin_mlps(o, 7).first), 1e-3);  // the weights did move
  }
}

TEST(FusedStep, Bf16StaysCloseToFp32AndKeepsFloatWeights) {
  nn::MlpOptions o;
  o.in_features = 64;
  o.hidden = {32};
  o.out_features = 2;
  auto [fp32_model, bf16_model] = fixtures::twin_mlps(o, 3);
  train::FusedMlpStep fp32(*fp32_model, 0.05, false), bf16(*bf16_model, 0.05, true);
  double loss_gap = 0;
  for (const auto& [x, y] : batches(20, 16, 64, 2)) {
    const auto a = fp32.step(x, y), b = bf16.step(x, y);
    loss_gap = std::max(loss_gap, std::abs(a.loss - b.loss));
  }
  EXPECT_LT(loss_gap, 0.02);                               // bfloat16 keeps about 3 significant digits
  EXPECT_LT(max_difference(fp32_model, bf16_model), 0.01);
  EXPECT_GT(max_difference(fp32_model, bf16_model), 0.0);  // the products did run in bfloat16
  for (const auto& p : bf16_model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
}

TEST(FusedStep, SaysWhyItDoesNotApply) {
  const auto model = nn::make_mlp(nn::MlpOptions());  // book-small's shape
  const auto& o = *model;
  train::OptimizerConfig sgd;
  const c10::Device cpu(c10::kCPU);
  EXPECT_EQ(train::fused_step_unsupported(o, nn::LossKind::kNll, sgd, cpu), "");
  auto momentum = sgd;
  momentum.momentum = 0.9;
  EXPECT_NE(train::fused_step_unsupported(o, nn::LossKind::kNll, momentum, cpu).find("plain SGD"), std::string::npos);
  auto adam = sgd;
  adam.kind = train::OptimizerKind::kAdam;
  EXPECT_NE(train::fused_step_unsupported(o, nn::LossKind::kNll, adam, cpu).find("adam"), std::string::npos);
  EXPECT_NE(train::fused_step_unsupported(o, nn::LossKind::kMse, sgd, cpu).find("mse"), std::string::npos);
  EXPECT_NE(train::fused_step_unsupported(o, nn::LossKind::kNll, sgd, c10::Device(c10::kCUDA)).find("CPU"),
            std::string::npos);
}

TEST(FusedStep, SaysWhenTheModelIsNoMlp) {
  // A classifier of another family: the registry's interface, but no linear layers to fuse.
  struct Other : nn::Classifier {
    Other() : nn::Classifier(nn::ModelSpec()) {}
    at::Tensor logits(const at::Tensor& x) override { return x.reshape({x.size(0), -1}); }
    std::vector<nn::LayerRow> layer_rows() const override { return {}; }
  };
  Other other;
  EXPECT_NE(train::fused_step_unsupported(other, nn::LossKind::kCrossEntropy, train::OptimizerConfig(),
                                          c10::Device(c10::kCPU))
                .find("MLPs, net and net-width only"),
            std::string::npos);
}
