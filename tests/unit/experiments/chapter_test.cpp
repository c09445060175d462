// The chapter's experiments: their numbers, their files, and shift_images.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/experiments/chapter.h"
#include "support/fixtures.h"

using namespace birdplane;

namespace {

double summary(const experiments::Output& o, const std::string& key) { return o.summary.at(key).get<double>(); }

}  // namespace

TEST(ExperimentSoftmax, PropertiesHoldAndLossesAgree) {
  auto o = experiments::softmax_experiment(5, 200, 10);
  EXPECT_GT(summary(o, "min_probability"), 0);
  EXPECT_LT(summary(o, "max_probability"), 1);
  EXPECT_LT(summary(o, "max_sum_error"), 1e-12);
  EXPECT_TRUE(o.summary.at("order_kept").get<bool>());
  EXPECT_LT(summary(o, "nll_vs_ce_float64"), 1e-12);
  for (const auto& row : o.tables.at(0).rows) EXPECT_TRUE(row.at(2).get<bool>()) << row.at(0);
}

TEST(ExperimentLosses, MseGradientVanishesWhereCrossEntropyPullsHardest) {
  auto o = experiments::losses_experiment();
  // At p = 0.01 cross-entropy's gradient is p - 1 = -0.99; MSE's is -2p(1-p)^2 (about -0.0196).
  EXPECT_NEAR(summary(o, "ce_grad_at_p_0.01"), -0.99, 1e-9);
  EXPECT_NEAR(summary(o, "mse_grad_at_p_0.01"), -2 * 0.01 * 0.99 * 0.99, 1e-9);
  EXPECT_LT(summary(o, "mse_over_ce_grad_at_p_0.01"), 0.03);
  EXPECT_NEAR(summary(o, "mse_grad_most_negative_at_p"), 1.0 / 3, 1e-3);  // where -2p(1-p)^2 is smallest
}

TEST(ExperimentOutputs, WritesMarkdownJsonAndSvg) {
  fixtures::TempDir tmp;
  experiments::write_outputs(experiments::losses_experiment(), tmp / "out");
  auto md = fixtures::read_file(tmp / "out/table.md");
  EXPECT_NE(md.find("| p | cross-entropy |"), std::string::npos) << md;
  auto j = nlohmann::json::parse(fixtures::read_file(tmp / "out/table.json"));
  EXPECT_EQ(j.at("name"), "losses");
  EXPECT_EQ(j.at("tables")[0].at("rows").size(), 9u);
  auto svg = fixtures::read_file(tmp / "out/gradients.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("predicted probability p of the true class"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(ExperimentTranslation, ShiftImagesMovesPixelsAndFills) {
  auto x = torch::arange(2 * 1 * 4 * 5, torch::kInt64).view({2, 1, 4, 5}).to(torch::kUInt8);
  auto right = experiments::shift_images(x, 2, 0);
  EXPECT_TRUE(torch::equal(right.narrow(-1, 2, 3), x.narrow(-1, 0, 3)));
  EXPECT_EQ(right.narrow(-1, 0, 2).sum().item<int64_t>(), 0);
  auto up_left = experiments::shift_images(x, -1, -3, 9);
  EXPECT_TRUE(torch::equal(up_left.narrow(-2, 0, 1).narrow(-1, 0, 4), x.narrow(-2, 3, 1).narrow(-1, 1, 4)));
  EXPECT_EQ(up_left[0][0][3][4].item<int64_t>(), 9);
  EXPECT_TRUE(torch::equal(experiments::shift_images(x, 0, 0), x));
}
