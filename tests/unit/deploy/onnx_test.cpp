// ONNX export checked by the real runtime: every preset is exported (ONNX's checker runs inside
// export_onnx), ONNX Runtime (npm's onnxruntime-node, tools/onnx_run.js) runs the file on validation
// images (CIFAR-10's test batch when $BIRDPLANE_DATA points at it), and its outputs equal LibTorch's.
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/deploy/onnx.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/transforms/functional.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/golden.h"

using namespace birdplane;
namespace fs = std::filesystem;

namespace {

bool have_runtime() {
  return fs::exists(std::string(BIRDPLANE_SOURCE_DIR) + "/.deps/onnxruntime/node_modules/onnxruntime-node") &&
         fixtures::run_shell("command -v node").exit_code == 0;
}

// Four validation images uint8 [4,3,32,32]: CIFAR-10's first test images, or seeded noise without the data.
at::Tensor validation_images() {
  if (const char* dir = std::getenv("BIRDPLANE_DATA")) {
    const std::string path = std::string(dir) + "/test_batch.bin";
    if (fs::exists(path)) {
      const auto bytes = fixtures::read_file(path);
      auto out = torch::empty({4, 3, 32, 32}, torch::kByte);
      for (int64_t i = 0; i < 4; ++i)
        std::memcpy(out[i].data_ptr(), bytes.data() + i * 3073 + 1, 3072);
      return out;
    }
  }
  torch::manual_seed(8);
  return torch::randint(0, 256, {4, 3, 32, 32}, torch::kByte);
}

struct OrtResult {
  at::Tensor output;
  nlohmann::json info;
};

OrtResult run_ort(const fixtures::TempDir& t, const std::string& model, const at::Tensor& input) {
  const auto c = input.contiguous();
  {
    std::ofstream f(t / "input.bin", std::ios::binary);
    f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  }
  const auto dims = fmt::format("{}", fmt::join(c.sizes(), ","));
  const auto r = fixtures::run_shell(fmt::format("node {}/tools/onnx_run.js {} {} {} {} {}", BIRDPLANE_SOURCE_DIR, model,
                                                 t / "input.bin", c.scalar_type() == at::kByte ? "uint8" : "float32", dims,
                                                 t / "output.bin"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  OrtResult out;
  if (r.exit_code != 0) return out;
  out.info = nlohmann::json::parse(r.out);
  const auto bytes = fixtures::read_file(t / "output.bin");
  const auto shape = out.info["dims"].get<std::vector<int64_t>>();
  out.output = torch::from_blob(const_cast<char*>(bytes.data()), shape, torch::kFloat).clone();
  return out;
}

std::string python_name(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

// A preset for 3 classes at 32x32, its batch norms moved off their initial statistics;
// "net-res-deep/separate-blocks" is that network with a block per depth.
train::ModelConfig config_for(const std::string& name) {
  train::ModelConfig config;
  config.spec.name = name.substr(0, name.find('/'));
  config.spec.shared_blocks = name.find("/separate-blocks") == std::string::npos;
  config.spec.num_classes = 3;
  config.spec.image_shape = {3, 32, 32};
  config.spec.channels = 8;
  config.spec.blocks = 3;
  config.classes = {"airplane", "bird", "cat"};
  config.mean = {0.49, 0.48, 0.45};
  config.std = {0.25, 0.24, 0.26};
  return config;
}

nn::ClassifierPtr model_for(const train::ModelConfig& config) {
  torch::manual_seed(21);
  auto model = nn::make_model(config.spec);
  {
    torch::NoGradGuard no_grad;
    model->train();
    for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, 3, 32, 32}));
  }
  model->eval();
  return model;
}

class OnnxExport : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // Not a skip: scripts/setup installs the runtime, so its absence is a broken setup.
    ASSERT_TRUE(have_runtime()) << "ONNX Runtime is missing: scripts/setup installs it into .deps/onnxruntime";
  }
};

}  // namespace

TEST_P(OnnxExport, OnnxRuntimeGivesLibTorchsOutputs) {
  fixtures::TempDir t;
  const auto config = config_for(GetParam());
  auto model = model_for(config);
  deploy::export_onnx(t / "model.onnx", config, *model);
  const auto pixels = validation_images();
  const auto x = transforms::functional::to_normalized(pixels, config.mean, config.std);
  torch::NoGradGuard no_grad;
  const auto want = model->forward(x);
  const auto got = run_ort(t, t / "model.onnx", x);
  ASSERT_TRUE(got.output.defined());
  EXPECT_EQ(got.info["input"], "images");
  EXPECT_EQ(got.info["name"], model->ends_in_log_softmax() ? "log_probabilities" : "logits");
  ASSERT_EQ(got.output.sizes(), want.sizes());
  // Within 1e-5 of the outputs' scale (1 or their largest magnitude, for the deep networks' logits).
  const double scale = std::max(1.0, want.abs().max().item<double>());
  EXPECT_LE(fixtures::max_abs_diff(got.output, want), 1e-5 * scale) << "largest output " << scale;
  // The batch dimension is dynamic: one image alone gives its row.
  const auto one = run_ort(t, t / "model.onnx", x.slice(0, 1, 2));
  ASSERT_TRUE(one.output.defined());
  EXPECT_LE(fixtures::max_abs_diff(one.output, want.slice(0, 1, 2)), 1e-5 * scale);
}

INSTANTIATE_TEST_SUITE_P(EveryPreset, OnnxExport, ::testing::ValuesIn(nn::model_names()),
                         [](const auto& info) { return python_name(info.param); });

// The book's models: birdplane's graph gives what torch.onnx.export of the Python classes gives
// (tools/book_models.py loads the same weights into them), both files run by ONNX Runtime.
class OnnxBookModel : public OnnxExport {};

TEST_P(OnnxBookModel, EqualsTorchOnnxExportOfThePythonClass) {
  fixtures::TempDir t;
  const auto config = config_for(GetParam());
  auto model = model_for(config);
  deploy::export_onnx(t / "birdplane.onnx", config, *model);
  train::export_state_dict(t / "state.pt", *model);
  const auto r = fixtures::run_shell(
      fmt::format("/usr/bin/python3 {}/tools/book_models.py onnx --model {} --channels {} --blocks {} --classes {} "
                  "--cpp-state {} --out {}{}",
                  BIRDPLANE_SOURCE_DIR, config.spec.name, config.spec.channels, config.spec.blocks,
                  config.spec.num_classes, t / "state.pt", t / "torch.onnx",
                  config.spec.shared_blocks ? "" : " --separate-blocks"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto x = transforms::functional::to_normalized(validation_images(), config.mean, config.std);
  const auto ours = run_ort(t, t / "birdplane.onnx", x);
  const auto theirs = run_ort(t, t / "torch.onnx", x);
  ASSERT_TRUE(ours.output.defined() && theirs.output.defined());
  ASSERT_EQ(ours.output.sizes(), theirs.output.sizes());
  EXPECT_LE(fixtures::max_abs_diff(ours.output, theirs.output), 1e-5);
  // And both equal LibTorch's forward pass, so neither side agrees with the other by sharing a mistake.
  torch::NoGradGuard no_grad;
  EXPECT_LE(fixtures::max_abs_diff(theirs.output, model->forward(x)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Book, OnnxBookModel,
                         ::testing::Values("book-small", "book-large", "net", "net-width", "net-dropout",
                                           "net-batchnorm", "net-depth", "net-res", "net-res-deep",
                                           "net-res-deep/separate-blocks"),
                         [](const auto& info) { return python_name(info.param); });

TEST(OnnxExportOptions, WithPreprocessingTheGraphTakesPixels) {
  ASSERT_TRUE(have_runtime()) << "ONNX Runtime is missing: scripts/setup installs it into .deps/onnxruntime";
  fixtures::TempDir t;
  for (const std::string name : {"net", "resnet18"}) {
    const auto config = config_for(name);
    auto model = model_for(config);
    deploy::OnnxOptions options;
    options.with_preprocessing = true;
    deploy::export_onnx(t / "pixels.onnx", config, *model, options);
    const auto pixels = validation_images();
    torch::NoGradGuard no_grad;
    const auto want = model->forward(transforms::functional::to_normalized(pixels, config.mean, config.std));
    const auto got = run_ort(t, t / "pixels.onnx", pixels);
    ASSERT_TRUE(got.output.defined());
    EXPECT_EQ(got.info["input"], "pixels");
    const double scale = std::max(1.0, want.abs().max().item<double>());
    EXPECT_LE(fixtures::max_abs_diff(got.output, want), 1e-5 * scale) << name;
  }
}

TEST(OnnxExportOptions, TheFileCarriesTheClassesAndPreprocessingAndPassesTheCheckerInPython) {
  fixtures::TempDir t;
  const auto config = config_for("net-batchnorm");
  auto model = model_for(config);
  deploy::export_onnx(t / "m.onnx", config, *model);
  const auto r = fixtures::run_shell(fmt::format(
      "/usr/bin/python3 -c \"import onnx, json; m = onnx.load('{}'); onnx.checker.check_model(m, full_check=True); "
      "meta = {{p.key: p.value for p in m.metadata_props}}; "
      "print(json.dumps({{'opset': m.opset_import[0].version, 'meta': meta, "
      "'batch': m.graph.input[0].type.tensor_type.shape.dim[0].dim_param}}))\"",
      t / "m.onnx"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["opset"], deploy::kOnnxOpset);
  EXPECT_EQ(j["batch"], "batch");
  EXPECT_EQ(nlohmann::json::parse(j["meta"]["classes"].get<std::string>()), nlohmann::json(config.classes));
  EXPECT_EQ(nlohmann::json::parse(j["meta"]["mean"].get<std::string>()), nlohmann::json(config.mean));
  EXPECT_EQ(nlohmann::json::parse(j["meta"]["image_size"].get<std::string>()), nlohmann::json({32, 32}));
  EXPECT_EQ(j["meta"]["model"], "net-batchnorm");
}
