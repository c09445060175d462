// The chapter-8 presets through the built program: train, eval, predict, export, --init-from, the
// summary, and bad settings.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"
#include "support/state_dict_checks.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::TempDir;

TEST(CliConvNets, TrainEvalPredictExportAndInitFromOnNetDropout) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1";
  auto r = run_birdplane("train --model net-dropout --channels 8 --classes airplane,bird --epochs 2 --weight-decay 0.001 "
                         "--augment \"RandomCrop(32, padding=2)\" --runs-dir " + (t / "runs") + " --name d" + common);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "autograd step")) << r.out;
  auto config = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/d/config.json"));
  EXPECT_EQ(config["model"]["spec"]["name"], "net-dropout");
  EXPECT_EQ(config["model"]["spec"]["channels"], 8);
  const std::string model = t / "runs/d/model.pt";
  auto e = run_birdplane("eval --json --checkpoint " + model + common);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out)["total"], 4);  // 2 classes x 2 test images
  birdplane::data::write_png(t / "img.png", torch::full({3, 40, 48}, 100, torch::kUInt8));
  auto p = run_birdplane("predict --checkpoint " + model + " " + (t / "img.png"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(contains(p.out, "resized from 48x40 to 32x32")) << p.out;
  auto x = run_birdplane("export --checkpoint " + model + " --out " + (t / "sd.pt"));
  ASSERT_EQ(x.exit_code, 0) << x.err;
  // One epoch at a learning rate of 1e-9 (training needs an epoch): the weights stay where they started,
  // which must be the exported ones.
  auto i = run_birdplane("train --model net-dropout --channels 8 --classes airplane,bird --epochs 1 --lr 1e-9 "
                         "--init-from " + (t / "sd.pt") + " --runs-dir " + (t / "runs") + " --name i" + common);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_LE(birdplane::fixtures::max_parameter_difference(t / "runs/i/model.pt", t / "sd.pt"), 1e-6);
  // A state_dict of another preset: exit 2, naming the key and both shapes.
  auto bad = run_birdplane("train --model net-width --classes airplane,bird --epochs 1 --init-from " + (t / "sd.pt") +
                           " --runs-dir " + (t / "runs") + " --name bad" + common);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "'conv1.weight' has shape [8, 3, 3, 3], the model needs [32, 3, 3, 3]")) << bad.err;
  EXPECT_FALSE(fs::exists(t / "runs/bad"));
}

TEST(CliConvNets, SummaryShowsShapesAndTheBooksCounts) {
  auto r = run_birdplane("model --summary --model net");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "total parameters: 18090")) << r.out;
  EXPECT_TRUE(contains(r.out, "[B, 16, 32, 32]")) << r.out;
  EXPECT_TRUE(contains(r.out, "[B, 8, 8, 8]")) << r.out;
  auto w = run_birdplane("model --summary --model net-width");
  EXPECT_TRUE(contains(w.out, "total parameters: 38386")) << w.out;
  auto d = run_birdplane("model --summary --model net-res-deep --blocks 4");
  EXPECT_TRUE(contains(d.out, "4 x ResBlock")) << d.out;
  EXPECT_TRUE(contains(d.out, "shared")) << d.out;
  // conv1 896, four blocks of 9216 + 64, fc1 65568, fc2 66.
  auto s = run_birdplane("model --summary --model net-res-deep --blocks 4 --separate-blocks");
  EXPECT_TRUE(contains(s.out, "one per depth")) << s.out;
  EXPECT_TRUE(contains(s.out, "total parameters: 103650")) << s.out;
}

TEST(CliConvNets, SeparateBlocksAreRecordedAndRebuiltFromTheModelFile) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 4);
  auto r = run_birdplane("train --classes airplane,bird --epochs 1 --no-download --threads 1 --model net-res-deep "
                         "--channels 4 --blocks 3 --separate-blocks --data-dir " + t.path() + " --runs-dir " +
                         (t / "runs") + " --name deep");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto config = nlohmann::json::parse(birdplane::fixtures::read_file(t / "runs/deep/config.json"));
  EXPECT_EQ(config["run"]["model"]["shared_blocks"], false) << config.dump();
  const auto ck = birdplane::train::load_checkpoint(t / "runs/deep/model.pt");
  EXPECT_FALSE(ck.config.spec.shared_blocks);
  // conv1 3*4*9+4, three blocks of 4*4*9 + 2*4, fc1 8*8*4*32+32, fc2 66: a block per depth, as trained.
  EXPECT_EQ(birdplane::nn::count_parameters(*ck.model), 112 + 3 * (144 + 8) + 8224 + 66);
  auto e = run_birdplane("eval --no-download --data-dir " + t.path() + " --checkpoint " + (t / "runs/deep/model.pt"));
  EXPECT_EQ(e.exit_code, 0) << e.err;
}

TEST(CliConvNets, BadChannelsAndBlocksExitTwoNamingTheFlag) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 4);
  struct Case {
    std::string args, expect;
  };
  for (const auto& c : {Case{"--model net-width --channels 0", "--channels: 0"},
                        Case{"--model net-width --channels 7", "--channels: 7 is odd"},
                        Case{"--model net-res-deep --blocks -1", "--blocks: -1"},
                        Case{"--model net-depth --channels 5000", "--channels: 5000"}}) {
    auto r = run_birdplane("train --classes airplane,bird --epochs 1 --no-download --data-dir " + t.path() +
                           " --runs-dir " + (t / "runs") + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.expect)) << c.args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(t / "runs"));
  auto m = run_birdplane("model --model net-width --channels 3");
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_TRUE(contains(m.err, "--channels: 3 is odd")) << m.err;
}

TEST(CliExperiment, ModelsComparesPresetsInATableAndABarChart) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 10);
  auto r = run_birdplane("experiment models --models book-small,net,net-batchnorm --channels 4 --epochs 1 --data-dir " +
                         t.path() + " --no-download --threads 1 --out " + (t / "m"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(birdplane::fixtures::read_file(t / "m/table.json"));
  ASSERT_EQ(j["summary"]["models"].size(), 3u);
  EXPECT_EQ(j["summary"]["models"][1]["parameters"], 18090);
  const auto svg = birdplane::fixtures::read_file(t / "m/models.svg");
  EXPECT_TRUE(contains(svg, "net-batchnorm")) << svg.substr(0, 200);
  EXPECT_TRUE(fs::exists(t / "m/net/config.json"));
  auto bad = run_birdplane("experiment models --models net,vgg --data-dir " + t.path() + " --out " + (t / "x"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "--models: unknown model 'vgg'")) << bad.err;
}

TEST(CliExperiment, TranslationPutsAConvNetBesideTheMlp) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 10);
  auto r = run_birdplane("experiment translation --models book-small,net --epochs 1 --max-shift 2 --data-dir " +
                         t.path() + " --no-download --threads 1 --out " + (t / "tr"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(birdplane::fixtures::read_file(t / "tr/table.json"));
  ASSERT_EQ(j["summary"]["arms"].size(), 4u);
  EXPECT_EQ(j["summary"]["arms"][2]["run"], "net-plain");
  EXPECT_EQ(j["summary"]["arms"][3]["accuracy_by_shift_right"].size(), 3u);
  EXPECT_TRUE(fs::exists(t / "tr/net-augmented/model.pt"));
}
