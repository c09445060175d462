// The chapter-8 presets against the book's Python classes (tools/book_models.py, run with Debian's
// /usr/bin/python3): a state_dict exported here loads there with the same outputs, and one saved there
// loads here (--init-from) with the same outputs, batch-norm statistics included.
#include <cctype>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/nn/convnets.h"
#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"

using namespace birdplane;

namespace {

// A preset name, or "net-res-deep/separate-blocks" for that network with a block per depth.
class BookModels : public ::testing::TestWithParam<std::string> {};

const std::string kSeparate = "/separate-blocks";

at::Tensor load_entry(const std::string& path, const std::string& key) {
  const auto bytes = fixtures::read_file(path);
  return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict().at(key).toTensor();
}

}  // namespace

TEST_P(BookModels, StateDictsMoveBothWaysWithTheSameOutputs) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  fixtures::TempDir tmp;
  nn::ModelSpec spec;
  const std::string param = GetParam();
  spec.shared_blocks = param.find(kSeparate) == std::string::npos;
  spec.name = param.substr(0, param.find('/'));
  spec.num_classes = 3;
  spec.channels = 8;
  spec.blocks = 3;
  torch::manual_seed(11);
  auto model = nn::make_model(spec);
  {
    torch::NoGradGuard no_grad;
    model->train();
    model->forward(torch::randn({6, 3, 32, 32}));  // moves batch-norm statistics away from their start
  }
  model->eval();
  train::export_state_dict(tmp / "cpp.pt", *model);
  const auto cmd = fmt::format("/usr/bin/python3 {}/tools/book_models.py check --model {} --channels 8 --blocks 3 "
                               "--classes 3 --cpp-state {} --py-state {} --out {}{}",
                               BIRDPLANE_SOURCE_DIR, spec.name, tmp / "cpp.pt", tmp / "py.pt", tmp / "out.pt",
                               spec.shared_blocks ? "" : " --separate-blocks");
  auto py = fixtures::run_shell(cmd);
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const auto x = torch::linspace(-1, 1, 4 * 3 * 32 * 32).view({4, 3, 32, 32});
  ASSERT_TRUE(torch::equal(x, load_entry(tmp / "out.pt", "x")));
  torch::NoGradGuard no_grad;
  EXPECT_LE((model->forward(x) - load_entry(tmp / "out.pt", "from_cpp")).abs().max().item<double>(), 1e-5);
  auto imported = nn::make_model(spec);
  train::import_state_dict(tmp / "py.pt", *imported);
  imported->eval();
  EXPECT_LE((imported->forward(x) - load_entry(tmp / "out.pt", "from_py")).abs().max().item<double>(), 1e-5);
}

namespace {
std::vector<std::string> book_model_cases() {
  auto cases = nn::convnet_names();
  cases.push_back("net-res-deep" + kSeparate);
  return cases;
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(Chapter8, BookModels, ::testing::ValuesIn(book_model_cases()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });
