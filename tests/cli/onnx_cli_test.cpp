// `birdplane export --format onnx` as a user runs it: a trained run's model.pt to an ONNX file that ONNX
// Runtime (tools/onnx_run.js) runs on raw pixels, giving the probabilities `predict` gives; bad settings
// and unwritable outputs are one message and exit 2, with an existing file left whole.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

TEST(CliOnnx, ExportedPixelsGraphGivesPredictsProbabilities) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird,cat";
  auto r = run_birdplane("train --model net-batchnorm --channels 8 --epochs 1 --runs-dir " + (t / "runs") + " --name a" +
                         common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string model = t / "runs/a/model.pt";
  auto x = run_birdplane("export --format onnx --with-preprocessing --checkpoint " + model + " --out " + (t / "m.onnx"));
  ASSERT_EQ(x.exit_code, 0) << x.err;
  EXPECT_TRUE(contains(x.out, "opset 17")) << x.out;
  EXPECT_TRUE(contains(x.out, "\"pixels\" uint8 [batch, 3, 32, 32]")) << x.out;
  EXPECT_TRUE(contains(x.out, "classes airplane,bird,cat")) << x.out;
  EXPECT_FALSE(contains(x.out, "test-time augmentation")) << x.out;

  // One picture of the model's size, through predict and through ONNX Runtime on its raw pixels.
  torch::manual_seed(3);
  const auto pixels = torch::randint(0, 256, {3, 32, 32}, torch::kUInt8);
  birdplane::data::write_png(t / "img.png", pixels);
  auto p = run_birdplane("predict --json --checkpoint " + model + " " + (t / "img.png"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  {
    std::ofstream f(t / "in.bin", std::ios::binary);
    f.write(static_cast<const char*>(pixels.data_ptr()), 3 * 32 * 32);
  }
  auto o = run_shell(fmt::format("node {}/tools/onnx_run.js {} {} uint8 1,3,32,32 {}", BIRDPLANE_SOURCE_DIR, t / "m.onnx",
                                 t / "in.bin", t / "out.bin"));
  ASSERT_EQ(o.exit_code, 0) << o.err << " (scripts/setup installs ONNX Runtime into .deps/onnxruntime)";
  const auto bytes = read_file(t / "out.bin");
  ASSERT_EQ(bytes.size(), 3 * sizeof(float));
  const auto logits = torch::from_blob(const_cast<char*>(bytes.data()), {3}, torch::kFloat).clone();
  const auto probabilities = torch::softmax(logits.to(torch::kDouble), 0);
  const auto j = nlohmann::json::parse(p.out);
  const auto& file = j.is_array() ? j[0] : j["files"][0];
  const auto& shown = file["probabilities"];
  ASSERT_EQ(shown.size(), 3u) << p.out;
  const char* names[] = {"airplane", "bird", "cat"};
  for (int64_t c = 0; c < 3; ++c)
    EXPECT_NEAR(shown[names[c]].get<double>(), probabilities[c].item<double>(), 1e-5) << names[c] << "\n" << p.out;
}

TEST(CliOnnx, BadSettingsAndUnwritableOutputsAreOneMessage) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird";
  ASSERT_EQ(run_birdplane("train --model net --epochs 1 --tta flip --runs-dir " + (t / "runs") + " --name a" + common)
                .exit_code,
            0);
  const std::string model = t / "runs/a/model.pt";
  // The model's test-time augmentation is not in the graph: the export says so.
  auto ok = run_birdplane("export --format onnx --checkpoint " + model + " --out " + (t / "m.onnx"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(contains(ok.out, "test-time augmentation (flip) is not part of the graph")) << ok.out;
  EXPECT_TRUE(contains(ok.out, "\"images\" float32")) << ok.out;
  const std::string before = read_file(t / "m.onnx");

  auto format = run_birdplane("export --format tflite --checkpoint " + model + " --out " + (t / "m.onnx"));
  EXPECT_EQ(format.exit_code, 2);
  EXPECT_TRUE(contains(format.err, "--format tflite: expected state_dict or onnx")) << format.err;
  auto pre = run_birdplane("export --with-preprocessing --checkpoint " + model + " --out " + (t / "m.onnx"));
  EXPECT_EQ(pre.exit_code, 2);
  EXPECT_TRUE(contains(pre.err, "--with-preprocessing")) << pre.err;
  auto dir = run_birdplane("export --format onnx --checkpoint " + model + " --out " + (t / "no/such/dir/m.onnx"));
  EXPECT_EQ(dir.exit_code, 2);
  EXPECT_TRUE(contains(dir.err, "no/such/dir")) << dir.err;
  // A full disk (a file-size limit, SIGXFSZ ignored so the write fails with EFBIG) over the existing file.
  auto full = run_shell("bash -c 'trap \"\" XFSZ; ulimit -f 4; exec " + std::string(BIRDPLANE_BINARY) +
                        " export --format onnx --checkpoint " + model + " --out " + (t / "m.onnx") + "'");
  EXPECT_EQ(full.exit_code, 2) << full.out << full.err;
  EXPECT_TRUE(contains(full.err, "m.onnx")) << full.err;
  EXPECT_EQ(read_file(t / "m.onnx"), before);
  for (const auto& e : fs::directory_iterator(t.path()))
    EXPECT_FALSE(contains(e.path().filename().string(), "tmp")) << "left behind: " << e.path();
}
