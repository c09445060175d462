// torchvision's architectures against torchvision 0.14 (tools/golden/backbones.py): weight files written
// by Debian's torchvision as it publishes its own (torch.save(model.state_dict())) load under the same
// keys and shapes, give the same logits in eval and train mode, move the batch-norm statistics the same
// way; fresh models are initialized as torchvision initializes them; exports load back into
// torchvision's classes with strict=True.
#include <cmath>
#include <filesystem>
#include <functional>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/nn/backbones.h"
#include "birdplane/train/checkpoint.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/golden.h"

using namespace birdplane;
namespace fs = std::filesystem;

namespace {

class Backbones : public ::testing::TestWithParam<std::string> {
 protected:
  // The seeded weight files (some 370 MB, seven seconds to write). CTest runs every test in a process of
  // its own, so they are written once into the build folder, under a name that changes with the script,
  // and moved into place whole (a test beside this one never sees half a folder).
  static void SetUpTestSuite() {
    if (!fs::exists("/usr/bin/python3")) return;
    const std::string script = std::string(BIRDPLANE_SOURCE_DIR) + "/tools/golden/backbones.py";
    const auto version = std::hash<std::string>{}(fixtures::read_file(script));
    dir_ = fmt::format("{}/test-weights/backbones-{:016x}", fs::path(BIRDPLANE_BINARY).parent_path().string(), version);
    if (fs::exists(dir_)) return;
    const std::string tmp = fmt::format("{}.tmp-{}", dir_, getpid());
    fs::create_directories(tmp);
    const auto r = fixtures::run_shell(fmt::format("/usr/bin/python3 {} weights {}", script, tmp));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::error_code ec;
    fs::rename(tmp, dir_, ec);  // fails when a test beside this one got there first: then its folder serves
    fs::remove_all(tmp, ec);
    ASSERT_TRUE(fs::exists(dir_ + "/resnet18.pth"));
  }
  void SetUp() override {
    if (dir_.empty()) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  }
  static std::string weights(const std::string& name) { return dir_ + "/" + name + ".pth"; }
  // The golden runs' model: 10 classes, 64x64 images, dropout and stochastic depth off.
  static nn::ModelSpec spec(const std::string& name, int64_t classes = 10) {
    nn::ModelSpec s;
    s.name = name;
    s.num_classes = classes;
    s.image_shape = {3, 64, 64};
    s.dropout = 0;
    s.stochastic_depth = 0;
    return s;
  }
  static std::string dir_;
};
std::string Backbones::dir_;

double float_checksum(const nn::Classifier& model) {
  double sum = 0;
  for (const auto& [key, t] : model.state_dict())
    if (t.is_floating_point()) sum += t.to(torch::kDouble).abs().sum().item<double>();
  return sum;
}

}  // namespace

TEST_P(Backbones, TorchvisionsWeightsGiveTorchvisionsLogitsInEvalAndTrainMode) {
  const std::string name = GetParam();
  fixtures::Golden g("backbones.pt");
  auto model = nn::make_model(spec(name));
  const auto load = train::load_pretrained(weights(name), *model, nn::backbone_head(name));
  EXPECT_FALSE(load.head_replaced);
  EXPECT_EQ(load.tensors, static_cast<int64_t>(model->state_dict().size()));
  // The same file the golden run made (Debian's torchvision writes it from the same seed).
  const double want = g[name + ".checksum"].item<double>();
  ASSERT_NEAR(float_checksum(*model), want, 1e-9 * want);
  const auto x = g["input"];
  torch::NoGradGuard no_grad;
  model->eval();
  const auto eval = model->forward(x);
  EXPECT_LE(fixtures::max_abs_diff(eval, g[name + ".eval"]), 1e-5);
  model->train();
  const auto train = model->forward(x);
  EXPECT_LE(fixtures::max_abs_diff(train, g[name + ".train"]), 1e-5);
  // The batch norms' running statistics after that forward (the first and the last batch norm).
  std::vector<std::pair<std::string, at::Tensor>> norms;
  for (const auto& [key, t] : model->state_dict())
    if (key.size() > 13 && key.compare(key.size() - 13, 13, ".running_mean") == 0) norms.emplace_back(key, t);
  if (name == "convnext_tiny") return;  // layer norms only
  ASSERT_GE(norms.size(), 2u);
  const auto sd = model->state_dict();
  auto find = [&](const std::string& key) {
    for (const auto& [k, t] : sd)
      if (k == key) return t;
    return at::Tensor();
  };
  int i = 0;
  for (const auto& key : {norms.front().first, norms.back().first}) {
    const std::string base = key.substr(0, key.size() - 13);
    const std::string gkey = fmt::format("{}.after_train.{}.", name, i++);
    EXPECT_LE(fixtures::max_abs_diff(find(base + ".running_mean"), g[gkey + "running_mean"]), 1e-6) << base;
    EXPECT_LE(fixtures::max_abs_diff(find(base + ".running_var"), g[gkey + "running_var"]), 1e-6) << base;
    EXPECT_EQ(find(base + ".num_batches_tracked").item<int64_t>(), g[gkey + "num_batches_tracked"].item<int64_t>());
  }
}

TEST_P(Backbones, AFreshModelIsInitializedAsTorchvisionsIs) {
  const std::string name = GetParam();
  fixtures::Golden g("backbones.pt");
  torch::manual_seed(3);
  nn::ModelSpec s = spec(name);
  s.dropout = -1;
  s.stochastic_depth = -1;
  auto model = nn::make_model(s);
  const auto ref_std = g[name + ".init_std"], ref_mean = g[name + ".init_mean"], ref_iqr = g[name + ".init_iqr"];
  std::vector<std::pair<std::string, at::Tensor>> floats;
  for (const auto& e : model->state_dict())
    if (e.second.is_floating_point()) floats.push_back(e);
  ASSERT_EQ(static_cast<int64_t>(floats.size()), ref_std.numel());
  for (size_t i = 0; i < floats.size(); ++i) {
    const auto& [key, t] = floats[i];
    const double n = static_cast<double>(t.numel());
    const double sd = n > 1 ? t.std().item<double>() : 0.0, mean = t.mean().item<double>();
    const double want_sd = ref_std[static_cast<int64_t>(i)].item<double>();
    const double want_mean = ref_mean[static_cast<int64_t>(i)].item<double>();
    if (want_sd == 0) {  // a constant: batch-norm scales, biases, layer scales, running statistics
      EXPECT_EQ(sd, 0.0) << key;
      EXPECT_NEAR(mean, want_mean, 1e-7) << key;
    } else if (n >= 256) {
      // Drawn: the same distribution, within some five standard errors (the seed is fixed, so this either
      // always passes or never: it is not a flaky draw). The spread is the interquartile
      // range: trunc_normal_ turns a uniform draw of exactly -1 into a value clamped at -2 (100 standard
      // deviations for ConvNeXt's 0.02), which moves a standard deviation but not quartiles.
      const auto q = torch::quantile(t.flatten().to(torch::kDouble), torch::tensor({0.25, 0.75}, torch::kDouble));
      const double iqr = (q[1] - q[0]).item<double>(), want_iqr = ref_iqr[static_cast<int64_t>(i)].item<double>();
      EXPECT_NEAR(iqr, want_iqr, 6 * want_iqr / std::sqrt(n)) << key;
      EXPECT_NEAR(mean, want_mean, 5 * want_sd * std::sqrt(2 / n)) << key;
    }
  }
}

TEST_P(Backbones, AnotherNumberOfClassesReplacesTheHeadAndTheExportLoadsIntoTorchvision) {
  const std::string name = GetParam();
  const std::string head = nn::backbone_head(name);
  fixtures::Golden g("backbones.pt");
  torch::manual_seed(5);
  auto model = nn::make_model(spec(name, 3));
  at::Tensor fresh_head;
  for (const auto& [key, t] : model->state_dict())
    if (key == head + ".weight") fresh_head = t.clone();
  const auto load = train::load_pretrained(weights(name), *model, head);
  EXPECT_TRUE(load.head_replaced);
  EXPECT_EQ(load.file_classes, 10);
  EXPECT_EQ(load.tensors, static_cast<int64_t>(model->state_dict().size()) - 2);
  for (const auto& [key, t] : model->state_dict())
    if (key == head + ".weight") EXPECT_TRUE(torch::equal(t, fresh_head)) << "the new head keeps its initialization";
  // Strict loading (--init-from) refuses the same file, naming the head's keys.
  auto strict = nn::make_model(spec(name, 3));
  fixtures::expect_error([&] { train::import_state_dict(weights(name), *strict); },
                         {"'" + head + ".weight' has shape [10, ", "the model needs [3, ", "2 differences"});
  fixtures::TempDir tmp;
  train::export_state_dict(tmp / "export.pt", *model);
  const auto r = fixtures::run_shell(fmt::format("/usr/bin/python3 {}/tools/golden/backbones.py check {} {} {}",
                                                 BIRDPLANE_SOURCE_DIR, name, tmp / "export.pt", tmp / "out.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  torch::NoGradGuard no_grad;
  model->eval();
  const auto bytes = fixtures::read_file(tmp / "out.pt");
  const auto out = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  ASSERT_TRUE(torch::equal(out.at("input").toTensor(), g["input"]));
  EXPECT_LE(fixtures::max_abs_diff(model->forward(g["input"]), out.at("logits").toTensor()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, Backbones, ::testing::ValuesIn(nn::backbone_names()));

TEST(BackboneModels, ParameterCountsAreTorchvisions) {
  const std::vector<std::pair<std::string, int64_t>> counts = {
      {"resnet18", 11'689'512},          {"resnet34", 21'797'672},        {"resnet50", 25'557'032},
      {"mobilenet_v3_small", 2'542'856}, {"mobilenet_v3_large", 5'483'032}, {"efficientnet_b0", 5'288'548},
      {"convnext_tiny", 28'589'128}};
  for (const auto& [name, count] : counts) {
    nn::ModelSpec s;
    s.name = name;
    s.num_classes = 1000;
    s.image_shape = {3, 224, 224};
    auto model = nn::make_model(s);
    EXPECT_EQ(nn::count_parameters(*model), count) << name;
    const auto table = nn::summary(*model);
    EXPECT_NE(table.find(fmt::format("total parameters: {}", count)), std::string::npos) << table;
    EXPECT_NE(table.find("[B, 1000]"), std::string::npos) << table;
  }
}

TEST(BackboneModels, FreezingStopsTheBackbonesGradientsAndKeepsItsBatchNormsInEvalMode) {
  nn::ModelSpec s;
  s.name = "resnet18";
  s.image_shape = {3, 32, 32};
  auto model = std::dynamic_pointer_cast<nn::Backbone>(nn::make_model(s));
  ASSERT_TRUE(model);
  EXPECT_EQ(model->stages(), (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}));
  model->freeze("layer2");
  model->train();
  for (const auto& p : model->named_parameters()) {
    const bool early = p.key().rfind("conv1.", 0) == 0 || p.key().rfind("bn1.", 0) == 0 ||
                       p.key().rfind("layer1.", 0) == 0 || p.key().rfind("layer2.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), !early) << p.key();
  }
  for (const auto& m : model->named_modules()) {
    if (m.key() == "bn1" || m.key() == "layer2.1.bn2") EXPECT_FALSE(m.value()->is_training()) << m.key();
    if (m.key() == "layer3.0.bn1") EXPECT_TRUE(m.value()->is_training()) << m.key();
  }
  // The frozen batch norms' running statistics stay; the others move.
  at::Tensor early, late;
  for (const auto& [key, t] : model->state_dict()) {
    if (key == "bn1.running_mean") early = t.clone();
    if (key == "layer4.1.bn2.running_mean") late = t.clone();
  }
  model->forward(torch::randn({4, 3, 32, 32})).sum().backward();
  for (const auto& [key, t] : model->state_dict()) {
    if (key == "bn1.running_mean") EXPECT_TRUE(torch::equal(t, early));
    if (key == "layer4.1.bn2.running_mean") EXPECT_FALSE(torch::equal(t, late));
  }
  model->freeze("backbone");
  for (const auto& p : model->named_parameters()) EXPECT_EQ(p.value().requires_grad(), p.key().rfind("fc.", 0) == 0) << p.key();
  model->freeze("");
  for (const auto& p : model->named_parameters()) EXPECT_TRUE(p.value().requires_grad()) << p.key();
  fixtures::expect_error([&] { model->freeze("fc"); }, {"freeze", "'fc' is not a stage", "layer4"});
}
