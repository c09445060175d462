#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/mlp.h"
#include "support/golden.h"

using namespace birdplane;

TEST(Mlp, BookPresetsHaveTheBooksParameterCountsAndKeys) {
  auto small = nn::make_mlp(nn::preset("book-small", 2));
  auto large = nn::make_mlp(nn::preset("book-large", 2));
  EXPECT_EQ(nn::count_parameters(small), 1574402);
  EXPECT_EQ(nn::count_parameters(large), 3737474);
  std::vector<std::string> keys;
  for (const auto& p : small->named_parameters()) keys.push_back(p.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  EXPECT_EQ(nn::natural_loss(nn::preset("book-small", 2)), "nll");
  EXPECT_EQ(nn::natural_loss(nn::preset("book-large", 2)), "cross-entropy");
  auto ten = nn::make_mlp(nn::preset("book-large", 10));
  EXPECT_EQ(ten->forward(torch::zeros({4, 3072})).sizes(), (std::vector<int64_t>{4, 10}));
  // book-small's output is log-probabilities: rows sum to 1 after exp.
  auto lp = small->forward(torch::randn({5, 3072}));
  EXPECT_LT((lp.exp().sum(1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_NE(nn::summary(nn::preset("book-small", 2)).find("1574402"), std::string::npos);
}

TEST(Mlp, RejectsUnknownPresetsAndBadWidths) {
  EXPECT_THROW(nn::preset("resnet", 2), Error);
  EXPECT_EQ(nn::parse_hidden("1024,512"), (std::vector<int64_t>{1024, 512}));
  EXPECT_THROW(nn::parse_hidden("1024,x"), Error);
  EXPECT_THROW(nn::parse_hidden("0"), Error);
  auto o = nn::preset("mlp", 3);
  o.activation = "gelu";
  EXPECT_THROW(nn::make_mlp(o), Error);
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
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use --loss cross-entropy"), std::string::npos);
  }
  EXPECT_THROW(nn::check_loss_fits(nn::LossKind::kCrossEntropy, true), Error);
  EXPECT_NO_THROW(nn::check_loss_fits(nn::LossKind::kMse, true));
  EXPECT_THROW(nn::parse_loss("hinge"), Error);
}
