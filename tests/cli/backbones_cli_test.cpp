// torchvision's networks from the command line: the summary's counts, predict with pretrained weights as
// they are (against torchvision's own preprocessing and model, tools/golden/backbones.py), and fine-tuning
// (weights with a new head, the two phases, freezing, the preprocessing recorded in model.pt).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/nn/backbones.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/run.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

using namespace birdplane;
using fixtures::contains;
using fixtures::run_birdplane;
using fixtures::run_shell;
using fixtures::TempDir;
namespace fs = std::filesystem;

namespace {

std::string tool() { return std::string("/usr/bin/python3 ") + BIRDPLANE_SOURCE_DIR + "/tools/golden/backbones.py"; }

// Two PNG images of odd sizes (PNG: both sides decode the same pixels).
void write_images(const TempDir& t) {
  const auto r = run_shell("/usr/bin/python3 -c \"\nimport numpy as np\nfrom PIL import Image\n"
                           "rng = np.random.default_rng(1)\n"
                           "for i, (w, h) in enumerate([(300, 260), (180, 240)]):\n"
                           "    y, x = np.mgrid[0:h, 0:w]\n"
                           "    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 7 % 256], -1)\n"
                           "    img = (img + rng.integers(-20, 20, img.shape)).clip(0, 255).astype(np.uint8)\n"
                           "    Image.fromarray(img).save('" + t.path() + "/img%d.png' % i)\n\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream names(t / "classes.txt");
  for (int i = 0; i < 10; ++i) names << "class" << i << "\n";
}

}  // namespace

TEST(CliBackbones, TheSummaryGivesTorchvisionsParameterCounts) {
  auto r = run_birdplane("model --model resnet50 --num-classes 1000 --summary");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "total parameters: 25557032")) << r.out;
  EXPECT_TRUE(contains(r.out, "layer4")) << r.out;
  EXPECT_TRUE(contains(r.out, "[B, 2048, 7, 7]")) << r.out;
  r = run_birdplane("model --model convnext_tiny --num-classes 1000");
  EXPECT_TRUE(contains(r.out, "total parameters: 28589128")) << r.out;
}

// predict --model --weights --class-names: the weights' own preprocessing (EfficientNet-B0's published
// file: resize 256 bicubic; another name: the first ImageNet weights', ResNet-18's 256 bilinear), the
// probabilities torchvision's gives within 1e-4.
TEST(CliBackbones, PredictWithPretrainedWeightsEqualsTorchvision) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  write_images(t);
  for (const auto& [model, file] : {std::pair<std::string, std::string>{"efficientnet_b0", "efficientnet_b0_rwightman-3dd342df.pth"},
                                    {"resnet18", "resnet18-seeded.pth"}}) {
    auto py = run_shell(fmt::format("{} one {} {}", tool(), model, t / file));
    ASSERT_EQ(py.exit_code, 0) << py.err;
    py = run_shell(fmt::format("{} predict {} {} {} {} {}", tool(), model, t / file, t / "ref.pt", t / "img0.png",
                               t / "img1.png"));
    ASSERT_EQ(py.exit_code, 0) << py.err;
    const auto r = run_birdplane(fmt::format("predict --model {} --weights {} --class-names {} --json --top-k 3 {} {}",
                                             model, t / file, t / "classes.txt", t / "img0.png", t / "img1.png"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = nlohmann::json::parse(r.out);
    const auto bytes = fixtures::read_file(t / "ref.pt");
    const auto ref = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
    const auto probs = ref.at("probabilities").toTensor().to(torch::kDouble);
    ASSERT_EQ(out.size(), 2u);
    for (int64_t i = 0; i < 2; ++i) {
      const auto& row = out[static_cast<size_t>(i)];
      double worst = 0;
      for (int c = 0; c < 10; ++c)
        worst = std::max(worst, std::abs(row["probabilities"][fmt::format("class{}", c)].get<double>() -
                                         probs[i][c].item<double>()));
      EXPECT_LE(worst, 1e-4) << model << " image " << i;
      EXPECT_EQ(row["top"].size(), 3u);
      EXPECT_EQ(row["class"].get<std::string>(), fmt::format("class{}", probs[i].argmax().item<int64_t>()));
    }
  }
  // Without the class names, or a names file of the wrong length: one clear message each.
  auto bad = run_birdplane(fmt::format("predict --model resnet18 --weights {} {}", t / "resnet18-seeded.pth", t / "img0.png"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "--class-names")) << bad.err;
  std::ofstream(t / "three.txt") << "a\nb\nc\n";
  bad = run_birdplane(fmt::format("predict --model resnet18 --weights {} --class-names {} {}", t / "resnet18-seeded.pth",
                                  t / "three.txt", t / "img0.png"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "'fc.weight' has shape [10, 512], the model needs [3, 512]")) << bad.err;
}

// Fine-tuning as a library run: pretrained ResNet-18 weights (10 classes) with a new 2-class head; for the
// first epoch only the head trains (the backbone equals the file, its batch-norm statistics too); then
// everything trains at a tenth of the rate. model.pt records the weights' preprocessing.
TEST(FineTune, TheHeadAloneFirstThenEverythingAtALowerRate) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  fixtures::write_fake_cifar(t.path(), 16);
  const auto py = run_shell(fmt::format("{} one resnet18 {}", tool(), t / "resnet18.pth"));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  train::RunSpec spec;
  spec.data.data_dir = t.path();
  spec.data.download = false;
  spec.data.classes = {"airplane", "bird"};
  spec.model.name = "resnet18";
  spec.training.epochs = 2;
  spec.training.batch_size = 8;
  spec.training.drop_last = true;  // batch norm in train mode needs more than one image
  spec.training.optimizer.lr = 0.01;
  spec.training.weights = t / "resnet18.pth";
  spec.training.fine_tune.head_epochs = 1;
  spec.training.fine_tune.lr_factor = 0.1;
  spec.runs_dir = t / "runs";
  spec.name = "ft";
  auto run = train::Run::start(spec);
  EXPECT_TRUE(run.trainer().pretrained().head_replaced);
  EXPECT_EQ(run.trainer().pretrained().file_classes, 10);
  // The file as torchvision would load it, for comparison.
  nn::ModelSpec ten = run.trainer().model().spec();
  ten.num_classes = 10;
  auto file = nn::make_model(ten);
  train::import_state_dict(t / "resnet18.pth", *file);
  auto tensor = [](const nn::Classifier& m, const std::string& key) {
    for (const auto& [k, v] : m.state_dict())
      if (k == key) return v.detach().clone();
    return at::Tensor();
  };
  struct Watch : train::TrainObserver {
    std::function<void(int64_t)> f;
    void on_epoch(const train::EpochMetrics& m, int64_t) override { f(m.epoch); }
  } watch;
  at::Tensor conv_after_1, bn_after_1, fc_before = tensor(run.trainer().model(), "fc.weight");
  watch.f = [&](int64_t epoch) {
    if (epoch != 1) return;
    conv_after_1 = tensor(run.trainer().model(), "layer1.0.conv1.weight");
    bn_after_1 = tensor(run.trainer().model(), "layer2.0.bn1.running_mean");
    EXPECT_FALSE(torch::equal(tensor(run.trainer().model(), "fc.weight"), fc_before)) << "the head trains";
  };
  const auto result = run.train(&watch);
  ASSERT_EQ(result.history.size(), 2u);
  EXPECT_TRUE(torch::equal(conv_after_1, tensor(*file, "layer1.0.conv1.weight"))) << "a frozen backbone moved";
  EXPECT_TRUE(torch::equal(bn_after_1, tensor(*file, "layer2.0.bn1.running_mean"))) << "a frozen batch norm moved";
  EXPECT_FALSE(torch::equal(tensor(run.trainer().model(), "layer1.0.conv1.weight"), conv_after_1))
      << "the second phase trains the backbone";
  EXPECT_DOUBLE_EQ(result.history[0].lr, 0.01);
  EXPECT_NEAR(result.history[1].lr, 0.001, 1e-12);
  const auto ck = train::load_checkpoint(t / "runs/ft/model.pt");
  EXPECT_EQ(ck.config.resize, 37);  // 256 / 224 of the 32-pixel images
  EXPECT_EQ(ck.config.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  const auto config = nlohmann::json::parse(fixtures::read_file(t / "runs/ft/config.json"));
  EXPECT_TRUE(config["pretrained"]["head_replaced"].get<bool>()) << config.dump();
  EXPECT_EQ(config["run"]["training"]["fine_tune"]["head_epochs"].get<int64_t>(), 1);
}

TEST(CliBackbones, FineTuningFlagsAndTheirErrors) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  fixtures::write_fake_cifar(t.path(), 8);
  const auto py = run_shell(fmt::format("{} one mobilenet_v3_small {}", tool(), t / "m.pth"));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const std::string base = fmt::format("train --data-dir {} --no-download --classes airplane,bird --model "
                                       "mobilenet_v3_small --batch-size 8 --drop-last --runs-dir {} --weights {}",
                                       t.path(), t / "runs", t / "m.pth");
  auto r = run_birdplane(base + " --name ok --epochs 2 --fine-tune 1:0.5 --freeze features.2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "its 10-class head replaced by a new one for 2 classes")) << r.out;
  const auto metrics = fixtures::read_file(t / "runs/ok/metrics.csv");
  EXPECT_TRUE(contains(metrics, ",0.005,") || contains(metrics, ",0.005\n")) << metrics;
  r = run_birdplane(base + " --name bad --freeze layer3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--freeze")) << r.err;
  EXPECT_TRUE(contains(r.err, "features.12")) << r.err;
  EXPECT_FALSE(fs::exists(t / "runs/bad"));
  r = run_birdplane(base + " --name bad2 --fine-tune two");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--fine-tune")) << r.err;
  r = run_birdplane(fmt::format("train --data-dir {} --no-download --classes airplane,bird --model net --runs-dir {} "
                                "--name bad3 --freeze backbone",
                                t.path(), t / "runs"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "not one of torchvision's networks")) << r.err;
}

// An augmentation is checked on the run's own image size (it was once probed at CIFAR-10's 32x32, which
// refused RandomResizedCrop(224) for a folder at 224).
TEST(CliBackbones, TheAugmentationIsCheckedAtTheRunsImageSize) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  const auto py = run_shell("/usr/bin/python3 -c \"\nimport os\nimport numpy as np\nfrom PIL import Image\n"
                            "rng = np.random.default_rng(3)\n"
                            "for c in ('cats', 'dogs'):\n"
                            "    os.makedirs('" + t.path() + "/photos/' + c)\n"
                            "    for i in range(5):\n"
                            "        a = rng.integers(0, 256, (50, 60 + i, 3)).astype(np.uint8)\n"
                            "        Image.fromarray(a).save('" + t.path() + "/photos/%s/%d.png' % (c, i))\n\"");
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const std::string base = fmt::format("train --image-folder {} --image-size 48 --crop center --model net --epochs 1 "
                                       "--batch-size 4 --runs-dir {}",
                                       t / "photos", t / "runs");
  auto r = run_birdplane(base + " --name ok --augment \"RandomResizedCrop(48), RandomHorizontalFlip()\"");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_birdplane(base + " --name bad --augment \"Resize(24)\"");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--augment")) << r.err;
  EXPECT_TRUE(contains(r.err, "2x3x48x48")) << r.err;
  EXPECT_FALSE(fs::exists(t / "runs/bad"));
}
