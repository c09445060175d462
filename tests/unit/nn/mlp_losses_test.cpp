#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/mlp.h"
#include "support/golden.h"

using namespace birdplane;

namespace {

nn::ClassifierPtr preset(const std::string& name, int64_t classes) {
  nn::ModelSpec spec;
  spec.name = name;
  spec.num_classes = classes;
  return nn::make_model(spec);
}

}  // namespace

TEST(Mlp, BookPresetsHaveTheBooksParameterCountsAndKeys) {
  auto small = preset("book-small", 2);
  auto large = preset("book-large", 2);
  EXPECT_EQ(nn::count_parameters(*small), 1574402);
  EXPECT_EQ(nn::count_parameters(*large), 3737474);
  std::vector<std::string> keys;
  for (const auto& p : small->named_parameters()) keys.push_back(p.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  keys.clear();
  for (const auto& p : large->named_parameters()) keys.push_back(p.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias",
                                            "6.weight", "6.bias"}));
  EXPECT_EQ(nn::natural_loss(*small), nn::LossKind::kNll);
  EXPECT_EQ(nn::natural_loss(*large), nn::LossKind::kCrossEntropy);
  auto ten = preset("book-large", 10);
  // Images in, flattened inside: [B,3,32,32] and [B,3072] give the same scores.
  auto x = torch::randn({4, 3, 32, 32});
  EXPECT_EQ(ten->forward(x).sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_TRUE(torch::equal(ten->forward(x), ten->forward(x.reshape({4, -1}))));
  // book-small's output is log-probabilities: rows sum to 1 after exp.
  auto lp = small->forward(torch::randn({5, 3, 32, 32}));
  EXPECT_LT((lp.exp().sum(1) - 1).abs().max().item<double>(), 1e-5);
  const auto text = nn::summary(*small);
  EXPECT_NE(text.find("1574402"), std::string::npos) << text;
  EXPECT_NE(text.find("LogSoftmax(dim=1)"), std::string::npos) << text;
  EXPECT_NE(text.find("input (flattened 3x32x32)"), std::string::npos) << text;
}

TEST(Mlp, ForwardEqualsTheBooksSequentialWithTheSameWeights) {
  // The book's nn.Sequential(Linear, Tanh, Linear, LogSoftmax) built with LibTorch's own modules.
  auto model = preset("book-small", 2);
  torch::nn::Sequential seq(torch::nn::Linear(3072, 512), torch::nn::Tanh(), torch::nn::Linear(512, 2),
                            torch::nn::LogSoftmax(1));
  {
    torch::NoGradGuard no_grad;
    auto src = model->named_parameters();
    for (auto& p : seq->named_parameters()) p.value().copy_(src[p.key()]);
  }
  auto x = torch::randn({6, 3, 32, 32});
  EXPECT_TRUE(torch::equal(model->forward(x), seq->forward(x.reshape({6, -1}))));
}

TEST(Mlp, OneImageWithoutGradientsGivesItsRowOfTheBatch) {
  // One image under no_grad takes a matrix-vector path (Mlp::logits): its scores equal the batch's row
  // up to the order of the sums; with gradients it stays the layers' own product.
  for (const char* name : {"book-small", "book-large"}) {
    auto model = preset(name, 10);
    auto x = torch::randn({3, 3, 32, 32});
    const auto batch = model->forward(x).detach();
    {
      torch::NoGradGuard no_grad;
      for (int64_t i = 0; i < 3; ++i) {
        const auto one = model->forward(x.slice(0, i, i + 1));
        ASSERT_EQ(one.sizes(), (std::vector<int64_t>{1, 10}));
        EXPECT_LT(fixtures::max_abs_diff(one[0], batch[i]), 1e-5) << name << " image " << i;
      }
    }
    const auto with_grad = model->forward(x.slice(0, 0, 1));
    EXPECT_TRUE(with_grad.requires_grad());
    EXPECT_LT(fixtures::max_abs_diff(with_grad[0].detach(), batch[0]), 1e-5) << name;
  }
}

TEST(Mlp, RejectsUnknownPresetsAndBadWidths) {
  try {
    preset("resnet", 2);
    FAIL();
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "model");
    EXPECT_NE(e.problem().find("book-small"), std::string::npos) << e.what();  // lists the presets
  }
  EXPECT_THROW(preset("book-small", 1), SettingError);
  EXPECT_EQ(nn::parse_hidden("1024,512"), (std::vector<int64_t>{1024, 512}));
  EXPECT_THROW(nn::parse_hidden("1024,x"), SettingError);
  EXPECT_THROW(nn::parse_hidden("0"), SettingError);
  EXPECT_THROW(nn::parse_activation("gelu"), SettingError);
  EXPECT_EQ(nn::parse_activation("relu"), nn::Activation::kRelu);
}

TEST(Losses, MatchPyTorchLossesAndGradients) {
  fixtures::Golden g("losses.pt");
  auto logits = g["logits"], target = g["target"];
  struct Case { nn::LossKind kind; std::string name; bool log_probs; };
  for (const auto& c : {Case{nn::LossKind::kNll, "nll", true}, Case{nn::LossKind::kCrossEntropy, "ce", false},
                        Case{nn::LossKind::kMse, "mse", false}, Case{nn::LossKind::kMse, "mse", true}}) {
    auto x = logits.clone().requires_grad_(true);
    auto out = c.log_probs ? torch::log_softmax(x, 1) : x;
    auto loss = nn::compute_loss(c.kind, out, target, c.log_probs);
    loss.backward();
    EXPECT_NEAR(loss.item<double>(), g[c.name + "_loss"].item<double>(), 1e-6) << c.name;
    EXPECT_LE(fixtures::max_abs_diff(x.grad(), g[c.name + "_grad"]), 1e-6) << c.name;
  }
}

TEST(Losses, RefusesALossThatDoesNotFitTheOutput) {
  try {
    nn::check_loss_fits(nn::LossKind::kNll, false);
    FAIL();
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "loss");
    EXPECT_NE(e.problem().find("use cross-entropy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(nn::check_loss_fits(nn::LossKind::kCrossEntropy, true), Error);
  EXPECT_NO_THROW(nn::check_loss_fits(nn::LossKind::kMse, true));
  EXPECT_THROW(nn::parse_loss("hinge"), Error);
}
