// libFuzzer target: model files, the one parser of outside input that reaches LibTorch's own readers.
// Each input is written to a file and read three ways, as the commands read it:
//   - load_checkpoint (eval, predict, export, train --resume): a checkpoint.pt or model.pt;
//   - when that succeeds, load_optimizer_state into an Adam and into an SGD-with-momentum optimizer over
//     the loaded model (train --resume), each followed by one step;
//   - import_state_dict into a tiny MLP (train --init-from): a state_dict from `birdplane export` or
//     Python's torch.save.
// Each may succeed or throw birdplane::Error, and the Error must name the file and not be a
// SettingError (the file is at fault, not a setting the user gave). Anything else is a bug: a crash, a
// sanitizer report, another exception type (c10::Error, std::bad_alloc) escaping, or an accepted file
// that breaks what its users rely on (checked below).
//
// The work per input stays small: the committed seeds (fuzz/corpus/checkpoint/) hold a 48-8-2 MLP
// (410 weights; also as birdplane 0.1 wrote it) and a 2-channel net-batchnorm on 3x4x4 images, so a
// file the fuzzer keeps valid loads in well under a millisecond of LibTorch work. Seeds:
// BIRDPLANE_FUZZ_WRITE_SEEDS=DIR writes the birdplane-made ones (see write_seeds; the optimizer state
// in the two checkpoints is keyed by memory addresses, so their bytes differ from run to run), and
// tools/write_fuzz_seeds.py the Python-made ones.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/optim.h"
#include "fuzz_util.h"

namespace fs = std::filesystem;
namespace bn = birdplane::nn;
namespace bt = birdplane::train;

namespace {

// The MLP that state_dicts are imported into, and the one the seeds hold: "mlp" preset, 3x4x4 images
// (48 inputs), one hidden layer of 8, two classes. Keys 0.weight [8,48], 0.bias, 2.weight [2,8], 2.bias.
bn::ModelSpec mlp_spec() {
  bn::ModelSpec s;
  s.name = "mlp";
  s.num_classes = 2;
  s.image_shape = {3, 4, 4};
  s.hidden = {8};
  return s;
}

bt::ModelConfig config_for(const bn::ModelSpec& spec) {
  bt::ModelConfig c;
  c.spec = spec;
  c.loss = bn::natural_loss(*bn::make_model(spec));
  c.classes = {"airplane", "bird"};
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.25, 0.25, 0.25};
  return c;
}

// One optimizer step on the model's parameters with gradients of ones, so a checkpoint's optimizer
// state is used as training would use it.
void step_once(bn::Classifier& model, torch::optim::Optimizer& optimizer) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::ones_like(p);
  optimizer.step();
}

std::unique_ptr<torch::optim::Optimizer> optimizer_for(bn::Classifier& model, bt::OptimizerKind kind) {
  bt::OptimizerConfig o;
  o.kind = kind;
  if (kind == bt::OptimizerKind::kSgd) o.momentum = 0.9;
  return bt::make_optimizer(o, model.parameters());
}

// BIRDPLANE_FUZZ_WRITE_SEEDS=DIR: the birdplane-made seeds, each a few KB.
void write_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  torch::manual_seed(0);
  const bn::ModelSpec spec = mlp_spec();
  {  // checkpoint.pt of a run after one Adam step (optimizer state present), epoch 1
    auto model = bn::make_model(spec);
    auto optimizer = optimizer_for(*model, bt::OptimizerKind::kAdam);
    step_once(*model, *optimizer);
    const nlohmann::json run = {{"epochs", 3}, {"optimizer", "adam"}, {"lr", 0.001}};
    bt::save_checkpoint((dir / "checkpoint_adam.pt").string(), config_for(spec), *model, optimizer.get(), 1, run);
  }
  {  // the same with SGD and momentum
    auto model = bn::make_model(spec);
    auto optimizer = optimizer_for(*model, bt::OptimizerKind::kSgd);
    step_once(*model, *optimizer);
    bt::save_checkpoint((dir / "checkpoint_sgd.pt").string(), config_for(spec), *model, optimizer.get(), 2);
  }
  {  // model.pt: the final model file (no optimizer), and its export
    auto model = bn::make_model(spec);
    bt::save_checkpoint((dir / "model.pt").string(), config_for(spec), *model);
    bt::export_state_dict((dir / "export.pt").string(), *model);
  }
  {  // a model.pt as birdplane 0.1 wrote it (tests/unit/train/checkpoint_test.cpp): the MLP as a
     // torch::nn::Sequential with its activations, the model section's fields at the top level
    torch::nn::Sequential old(torch::nn::Linear(48, 8), torch::nn::Tanh(), torch::nn::Linear(8, 2),
                              torch::nn::LogSoftmax(1));
    const nlohmann::json model_config = {{"model", "mlp"},   {"in_features", 48},   {"hidden", {8}},
                                         {"out_features", 2}, {"activation", "tanh"}, {"log_softmax", true},
                                         {"loss", "nll"},     {"classes", {"airplane", "bird"}},
                                         {"mean", {0.5, 0.5, 0.5}}, {"std", {0.25, 0.25, 0.25}}};
    torch::serialize::OutputArchive archive, model_archive;
    archive.write("birdplane_format", c10::IValue(int64_t{1}));
    archive.write("model_config", c10::IValue(model_config.dump()));
    archive.write("run_config", c10::IValue(std::string("{}")));
    archive.write("epoch", c10::IValue(int64_t{4}));
    old->save(model_archive);
    archive.write("model", model_archive);
    archive.save_to((dir / "model_birdplane_0.1.pt").string());
  }
  {  // a convnet with batch-norm buffers: net-batchnorm, 2 channels, 3x4x4 images
    bn::ModelSpec bn_spec;
    bn_spec.name = "net-batchnorm";
    bn_spec.image_shape = {3, 4, 4};
    bn_spec.channels = 2;
    auto model = bn::make_model(bn_spec);
    bt::save_checkpoint((dir / "batchnorm_model.pt").string(), config_for(bn_spec), *model);
  }
}

// BIRDPLANE_FUZZ_VERBOSE=1: says what became of each input (to see why a seed or a crash is refused).
bool verbose() {
  static const bool on = std::getenv("BIRDPLANE_FUZZ_VERBOSE") != nullptr;
  return on;
}

void say(const char* step, const char* outcome) {
  if (verbose()) std::fprintf(stderr, "fuzz_checkpoint: %s: %s\n", step, outcome);
}

bool names_file(const birdplane::Error& e, const std::string& path) {
  return std::string(e.what()).find(path) != std::string::npos;
}

// A refusal must be a birdplane::Error that names the file and is not about a setting.
void expect_clean(const birdplane::Error& e, const std::string& path) {
  if (dynamic_cast<const birdplane::SettingError*>(&e) != nullptr || !names_file(e, path)) {
    std::fprintf(stderr, "fuzz_checkpoint: a refusal that does not name the file: %s\n", e.what());
    __builtin_trap();
  }
}

void check_checkpoint(const std::string& path) {
  bt::Checkpoint ck;
  try {
    ck = bt::load_checkpoint(path);
  } catch (const birdplane::Error& e) {
    say("load_checkpoint", e.what());
    expect_clean(e, path);
    return;
  }
  say("load_checkpoint", "accepted");
  // Accepted: what eval, predict and --resume rely on.
  const auto& spec = ck.config.spec;
  if (!ck.model || ck.epoch < 0) __builtin_trap();
  if (static_cast<int64_t>(ck.config.classes.size()) != spec.num_classes) __builtin_trap();
  {
    torch::NoGradGuard no_grad;
    ck.model->eval();
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), spec.image_shape.begin(), spec.image_shape.end());
    const at::Tensor out = ck.model->forward(torch::zeros(shape));
    if (out.sizes() != at::IntArrayRef({1, spec.num_classes})) __builtin_trap();
  }
  // --resume: the optimizer state, into either optimizer a run may have.
  for (const auto kind : bt::kOptimizerKinds) {
    auto optimizer = optimizer_for(*ck.model, kind);
    try {
      bt::load_optimizer_state(path, *optimizer);
    } catch (const birdplane::Error& e) {
      say("load_optimizer_state", e.what());
      expect_clean(e, path);
      continue;
    }
    say("load_optimizer_state", kind == bt::OptimizerKind::kAdam ? "accepted into adam" : "accepted into sgd");
    step_once(*ck.model, *optimizer);
  }
}

void check_state_dict(const std::string& path) {
  auto model = bn::make_model(mlp_spec());
  try {
    bt::import_state_dict(path, *model);
  } catch (const birdplane::Error& e) {
    say("import_state_dict", e.what());
    expect_clean(e, path);
    return;
  }
  say("import_state_dict", "accepted");
  torch::NoGradGuard no_grad;
  const at::Tensor out = model->forward(torch::zeros({1, 3, 4, 4}));
  if (out.sizes() != at::IntArrayRef({1, 2})) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  if (const char* out = std::getenv("BIRDPLANE_FUZZ_WRITE_SEEDS"); out && *out) write_seeds(out);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path path = birdplane::fuzz::scratch_dir() / "input.pt";
  birdplane::fuzz::write_file(path, data, size);
  check_checkpoint(path.string());
  check_state_dict(path.string());
  return 0;
}
