// The training recipe's flags: each reaches config.json and the run, metrics.csv has the rate of every
// epoch, and values out of range exit 2 naming the flag.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "birdplane/train/metrics_csv.h"
#include "support/fixtures.h"
#include "support/sanitizer.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::TempDir;

TEST(CliRecipe, FlagsReachConfigAndTheRateReachesMetrics) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = "train --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird " +
                             "--runs-dir " + (t / "runs") + " --epochs 4 --model mlp --hidden 16";
  auto r = run_birdplane(common +
                         " --name adamw --optimizer adamw --lr 0.01 --weight-decay 0.05 --no-decay-bias-norm "
                         "--head-lr-multiplier 2 --schedule cosine --warmup 1 --warmup-factor 0.1 --min-lr 0.001 "
                         "--label-smoothing 0.1 --class-weights auto --clip-grad-norm 1 --clip-grad-value 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto config = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/adamw/config.json"));
  const auto& tr = config["run"]["training"];
  EXPECT_EQ(tr["optimizer"]["name"], "adamw");
  EXPECT_EQ(tr["optimizer"]["no_decay_bias_norm"], true);
  EXPECT_EQ(tr["optimizer"]["head_lr_multiplier"], 2.0);
  EXPECT_EQ(tr["schedule"]["name"], "cosine");
  EXPECT_EQ(tr["schedule"]["warmup"], 1);
  EXPECT_EQ(tr["label_smoothing"], 0.1);
  EXPECT_EQ(tr["class_weights"], "auto");
  EXPECT_EQ(tr["clip_grad_norm"], 1.0);
  EXPECT_EQ(config["step_used"], "autograd");
  // Per epoch: 0.01 * 0.1 during the warmup epoch, then cosine from 0.01 down towards 0.001 over 3.
  const auto rows = birdplane::train::read_metrics(t / "runs/adamw/metrics.csv");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_NEAR(rows[0].lr, 0.001, 1e-12);
  EXPECT_NEAR(rows[1].lr, 0.01, 1e-12);
  EXPECT_NEAR(rows[2].lr, 0.001 + 0.009 * 0.75, 1e-9);
  EXPECT_NEAR(rows[3].lr, 0.001 + 0.009 * 0.25, 1e-9);
  // The book's run keeps its constant rate and fused step.
  auto plain = run_birdplane(common + " --name plain");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto plain_rows = birdplane::train::read_metrics(t / "runs/plain/metrics.csv");
  for (const auto& row : plain_rows) EXPECT_EQ(row.lr, 0.01);
  const auto plain_config = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/plain/config.json"));
  EXPECT_EQ(plain_config["step_used"], "fused");
}

TEST(CliRecipe, BadValuesExitTwoNamingTheFlag) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 4);
  const std::string common = "train --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird " +
                             "--runs-dir " + (t / "runs") + " --epochs 3 --model mlp --hidden 8 --name x";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--label-smoothing 1.5", "--label-smoothing"},
      {"--warmup 3", "--warmup"},
      {"--warmup -1", "--warmup"},
      {"--schedule triangle", "--schedule"},
      {"--schedule plateau --plateau-patience -1", "--plateau-patience"},
      {"--schedule piecewise --lr-points 0:1,0.5", "--lr-points"},
      {"--schedule multistep --lr-milestones 2,1", "--lr-milestones"},
      {"--schedule multistep", "--lr-milestones"},
      {"--schedule onecycle --warmup 2", "--warmup"},
      {"--schedule step --lr-step-size 0", "--lr-step-size"},
      {"--class-weights 1,2,3", "--class-weights"},
      {"--class-weights 1,x", "--class-weights"},
      {"--clip-grad-norm -2", "--clip-grad-norm"},
      {"--head-lr-multiplier 0", "--head-lr-multiplier"},
      {"--optimizer lion", "--optimizer"},
      {"--step fused --label-smoothing 0.1", "--step"},
      {"--mixup -1", "--mixup"},
      {"--cutmix 1 --mix-prob 2", "--mix-prob"},
      {"--ema-decay 1", "--ema-decay"},
      {"--ema-decay 0.9 --ema-warmup 3", "--ema-warmup"},
      {"--early-stopping -1", "--early-stopping"},
      {"--min-delta -0.5", "--min-delta"},
      {"--final-model worst", "--final-model"},
      {"--tta sideways", "--tta"},
      {"--monitor train_loss", "--monitor"},
      {"--recipe fancy", "--recipe"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!birdplane::fixtures::run_case(i)) continue;
    const auto& [flags, flag] = cases[i];
    auto r = run_birdplane(common + " " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.err;
    EXPECT_TRUE(contains(r.err, flag)) << flags << ": " << r.err;
    EXPECT_FALSE(fs::exists(t / "runs/x/checkpoint.pt")) << flags;
  }
}

// Mixing, the weight average, early stopping with the best model, and test-time augmentation through
// the command line: results.json and best.pt say what happened; eval uses the model's augmentation.
TEST(CliRecipe, EarlyStoppingTheAverageAndTheBestModel) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  auto r = run_birdplane("train --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird " +
                         "--runs-dir " + (t / "runs") + " --name m --epochs 10 --model mlp --hidden 16 " +
                         "--mixup 0.2 --cutmix 1 --ema-decay 0.5 --early-stopping 2 --min-delta 100 " +
                         "--final-model best --tta flip");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "early stopping")) << r.out;
  EXPECT_TRUE(contains(r.out, "(the best epoch, 1)")) << r.out;
  const auto results = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/m/results.json"));
  EXPECT_EQ(results["stopped_early"], true);
  EXPECT_EQ(results["epochs_trained"], 3);
  EXPECT_EQ(results["model_from"], "best");
  EXPECT_TRUE(fs::exists(t / "runs/m/best.pt"));
  const auto config = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/m/config.json"));
  EXPECT_EQ(config["run"]["training"]["mix"]["cutmix_alpha"], 1.0);
  EXPECT_EQ(config["run"]["training"]["tta"], "flip");
  EXPECT_EQ(config["step_used"], "autograd");  // the MLPs' fused step takes no mixed targets
  EXPECT_TRUE(contains(config["step_note"].get<std::string>(), "mixed targets")) << config["step_note"];
  // eval reads the augmentation from the model; --tta overrides it.
  auto with = run_birdplane("eval --checkpoint " + (t / "runs/m/model.pt") + " --data-dir " + t.path() +
                            " --no-download --json");
  auto without = run_birdplane("eval --checkpoint " + (t / "runs/m/model.pt") + " --data-dir " + t.path() +
                               " --no-download --json --tta none");
  ASSERT_EQ(with.exit_code, 0) << with.err;
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_NE(nlohmann::json::parse(with.out)["loss"], nlohmann::json::parse(without.out)["loss"]);
}

// lr-find takes train's flags, writes its curve into the run folder and leaves a run there as it was.
TEST(CliRecipe, LrFindWritesItsCurveAndLeavesARunAlone) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird " +
                             "--runs-dir " + (t / "runs") + " --name r --model mlp --hidden 16";
  auto trained = run_birdplane("train --epochs 1" + common);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto checkpoint = birdplane::fixtures::read_file(t / "runs/r/checkpoint.pt");
  const auto metrics = birdplane::fixtures::read_file(t / "runs/r/metrics.csv");
  auto r = run_birdplane("lr-find --steps 20 --start-lr 1e-5 --end-lr 1" + common);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "suggested learning rate")) << r.out;
  EXPECT_TRUE(fs::exists(t / "runs/r/lr_find.csv"));
  EXPECT_TRUE(fs::exists(t / "runs/r/lr_find.svg"));
  EXPECT_EQ(birdplane::fixtures::read_file(t / "runs/r/checkpoint.pt"), checkpoint);
  EXPECT_EQ(birdplane::fixtures::read_file(t / "runs/r/metrics.csv"), metrics);
  auto bad = run_birdplane("lr-find --steps 2" + common);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "--steps")) << bad.err;
}
