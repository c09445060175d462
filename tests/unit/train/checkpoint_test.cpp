#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/optim.h"
#include "common/files.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::message_of;

namespace {

train::ModelConfig small_config() {
  train::ModelConfig c;
  c.spec.name = "mlp";
  c.spec.num_classes = 3;
  c.spec.hidden = {16};
  c.classes = {"a", "b", "c"};
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.25, 0.25, 0.25};
  return c;
}

// The model description (JSON) saved in checkpoint `path`.
nlohmann::json saved_model_config(const std::string& path) {
  torch::serialize::InputArchive in;
  in.load_from(path);
  c10::IValue v;
  in.read("model_config", v);
  return nlohmann::json::parse(v.toStringRef());
}

// A checkpoint at `path` whose model description is `model_config` (damaged as a test needs), whose
// weights are a fresh model built from `spec`, and whose completed epochs are `epoch`.
void write_checkpoint_with(const std::string& path, const nlohmann::json& model_config, const nn::ModelSpec& spec,
                           int64_t epoch = 0) {
  torch::serialize::OutputArchive out, model;
  out.write("birdplane_format", c10::IValue(int64_t{1}));
  out.write("model_config", c10::IValue(model_config.dump()));
  out.write("run_config", c10::IValue(std::string("{}")));
  out.write("epoch", c10::IValue(epoch));
  nn::make_model(spec)->save(model);
  out.write("model", model);
  out.save_to(path);
}

// Loading `path` fails with an Error (not a SettingError: the file is at fault, not a flag) that names
// the file, says it is damaged and mentions `part`.
void expect_damaged_file_not_setting(const std::string& path, const std::string& part) {
  try {
    train::load_checkpoint(path);
    FAIL() << "expected an error";
  } catch (const SettingError& e) {
    FAIL() << "a damaged file must not read as a bad setting: " << e.what();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("damaged"), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
}

// Expects `loaded` to hold what `saved` held, parameter by parameter in group order: SGD's momentum
// buffers; Adam's and AdamW's step counts and moment estimates (exp_avg, exp_avg_sq, max_exp_avg_sq).
// Both optimizers' states must cover every parameter (the caller steps `saved` first), so a loader that
// keeps the fresh optimizer's empty state fails. (Not the learning rates: LibTorch 1.13's
// Optimizer::load reads the groups' options but keeps its own, torch/optim/serialize.h; a resumed
// run's trainer sets the schedule's rates before its first step.)
void expect_same_optimizer_state(torch::optim::Optimizer& saved, torch::optim::Optimizer& loaded) {
  ASSERT_EQ(saved.param_groups().size(), loaded.param_groups().size());
  for (size_t g = 0; g < saved.param_groups().size(); ++g) {
    auto& a = saved.param_groups()[g];
    auto& b = loaded.param_groups()[g];
    ASSERT_EQ(a.params().size(), b.params().size()) << "group " << g;
    for (size_t i = 0; i < a.params().size(); ++i) {
      const std::string where = "group " + std::to_string(g) + ", parameter " + std::to_string(i);
      const auto sa = saved.state().find(c10::guts::to_string(a.params()[i].unsafeGetTensorImpl()));
      const auto sb = loaded.state().find(c10::guts::to_string(b.params()[i].unsafeGetTensorImpl()));
      ASSERT_NE(sa, saved.state().end()) << where << ": the saved optimizer has no state (step it first)";
      ASSERT_NE(sb, loaded.state().end()) << where << ": the loaded optimizer has no state";
      auto same = [&](const at::Tensor& x, const at::Tensor& y, const char* name) {
        ASSERT_EQ(x.defined(), y.defined()) << where << ": " << name;
        if (x.defined()) {
          EXPECT_TRUE(torch::equal(x, y)) << where << ": " << name << " differs";
        }
      };
      // Adam's and AdamW's states are two classes with the same members.
      auto same_adam = [&](const auto& x, const auto& y) {
        EXPECT_EQ(x.step(), y.step()) << where;
        same(x.exp_avg(), y.exp_avg(), "exp_avg");
        same(x.exp_avg_sq(), y.exp_avg_sq(), "exp_avg_sq");
        same(x.max_exp_avg_sq(), y.max_exp_avg_sq(), "max_exp_avg_sq");
      };
      if (auto* x = dynamic_cast<torch::optim::SGDParamState*>(sa->second.get())) {
        auto* y = dynamic_cast<torch::optim::SGDParamState*>(sb->second.get());
        ASSERT_TRUE(y) << where;
        ASSERT_TRUE(x->momentum_buffer().defined()) << where;
        same(x->momentum_buffer(), y->momentum_buffer(), "momentum_buffer");
      } else if (auto* x = dynamic_cast<torch::optim::AdamParamState*>(sa->second.get())) {
        auto* y = dynamic_cast<torch::optim::AdamParamState*>(sb->second.get());
        ASSERT_TRUE(y) << where;
        same_adam(*x, *y);
      } else if (auto* x = dynamic_cast<torch::optim::AdamWParamState*>(sa->second.get())) {
        auto* y = dynamic_cast<torch::optim::AdamWParamState*>(sb->second.get());
        ASSERT_TRUE(y) << where;
        same_adam(*x, *y);
      } else {
        ADD_FAILURE() << where << ": an optimizer state this test does not know";
      }
    }
  }
}

}  // namespace

TEST(Checkpoint, RoundTripsWeightsConfigEpochAndOptimizer) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  auto model = nn::make_model(cfg.spec);
  train::OptimizerConfig oc;
  oc.momentum = 0.9;
  auto opt = train::make_optimizer(oc, model->parameters());
  // One step so the momentum buffers exist.
  auto loss = model->forward(torch::randn({4, 3072})).sum();
  opt->zero_grad();
  loss.backward();
  opt->step();
  train::save_checkpoint(tmp / "c.pt", cfg, *model, opt.get(), 7, {{"k", 1}});
  auto ck = train::load_checkpoint(tmp / "c.pt");
  EXPECT_EQ(ck.epoch, 7);
  EXPECT_EQ(ck.config.classes, cfg.classes);
  EXPECT_EQ(ck.config.spec.hidden, std::vector<int64_t>{16});
  EXPECT_EQ(ck.config.loss, nn::LossKind::kNll);
  EXPECT_EQ(ck.run_config["k"], 1);
  auto a = model->parameters(), b = ck.model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));
  auto opt2 = train::make_optimizer(oc, ck.model->parameters());
  train::load_optimizer_state(tmp / "c.pt", *opt2);
  expect_same_optimizer_state(*opt, *opt2);
  // No temporary files are left beside it.
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

// Every optimizer's state comes back as saved, after two steps (Adam's and AdamW's step count 2).
TEST(Checkpoint, OptimizerStateComesBackAsSavedForEveryKind) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  for (const auto kind : train::kOptimizerKinds) {
    const std::string name = train::to_string(kind);
    SCOPED_TRACE(name);
    torch::manual_seed(3);
    auto model = nn::make_model(cfg.spec);
    train::OptimizerConfig oc;
    oc.kind = kind;
    oc.momentum = 0.9;
    oc.weight_decay = 0.01;
    auto opt = train::make_optimizer(oc, model->parameters());
    for (int step = 0; step < 2; ++step) {
      opt->zero_grad();
      model->forward(torch::randn({4, 3072})).sum().backward();
      opt->step();
    }
    train::save_checkpoint(tmp / (name + ".pt"), cfg, *model, opt.get(), 1);
    auto fresh = train::make_optimizer(oc, train::load_checkpoint(tmp / (name + ".pt")).model->parameters());
    train::load_optimizer_state(tmp / (name + ".pt"), *fresh);
    expect_same_optimizer_state(*opt, *fresh);
    if (kind != train::OptimizerKind::kSgd) {
      const auto& p = fresh->param_groups()[0].params()[0];
      const auto& state = *fresh->state().at(c10::guts::to_string(p.unsafeGetTensorImpl()));
      EXPECT_EQ(kind == train::OptimizerKind::kAdam ? dynamic_cast<const torch::optim::AdamParamState&>(state).step()
                                                    : dynamic_cast<const torch::optim::AdamWParamState&>(state).step(),
                2);
    }
  }
}

TEST(Checkpoint, RejectsMissingTruncatedForeignAndMismatchedFiles) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  auto model = nn::make_model(cfg.spec);
  EXPECT_NE(message_of([&] { train::load_checkpoint(tmp / "none.pt"); }).find("does not exist"), std::string::npos);
  train::save_checkpoint(tmp / "c.pt", cfg, *model);
  const auto bytes = fixtures::read_file(tmp / "c.pt");
  std::ofstream(tmp / "cut.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_NE(message_of([&] { train::load_checkpoint(tmp / "cut.pt"); }).find("truncated"), std::string::npos);
  std::ofstream(tmp / "text.pt") << "hello";
  EXPECT_NE(message_of([&] { train::load_checkpoint(tmp / "text.pt"); }).find("text.pt"), std::string::npos);
  // Weights from a 32-wide model under a config that says 16.
  auto wide_cfg = cfg;
  wide_cfg.spec.hidden = {32};
  train::save_checkpoint(tmp / "bad.pt", cfg, *nn::make_model(wide_cfg.spec));
  auto msg = message_of([&] { train::load_checkpoint(tmp / "bad.pt"); });
  EXPECT_NE(msg.find("bad.pt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[16, 3072]"), std::string::npos) << msg;
}

TEST(Checkpoint, ExportAndImportStateDict) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  auto model = nn::make_model(cfg.spec);
  train::export_state_dict(tmp / "sd.pt", *model);
  auto other = nn::make_model(cfg.spec);
  train::import_state_dict(tmp / "sd.pt", *other);
  auto x = torch::randn({3, 3072});
  EXPECT_TRUE(torch::equal(model->forward(x), other->forward(x)));
  auto wide = cfg.spec;
  wide.hidden = {8};
  auto mismatched = nn::make_model(wide);
  auto msg = message_of([&] { train::import_state_dict(tmp / "sd.pt", *mismatched); });
  EXPECT_NE(msg.find("'0.weight' has shape [16, 3072], the model needs [8, 3072]"), std::string::npos) << msg;
  // A state_dict where a checkpoint is expected: a typed error naming the file (the CLI says what reads it).
  try {
    train::load_checkpoint(tmp / "sd.pt");
    ADD_FAILURE() << "a state_dict loaded as a checkpoint";
  } catch (const train::StateDictNotCheckpointError& e) {
    EXPECT_EQ(e.path(), tmp / "sd.pt");
    EXPECT_EQ(std::string(e.what()).find("--init-from"), std::string::npos) << e.what();
  }
}

TEST(WriteAtomically, KeepsTheOldFileWhenWritingFails) {
  fixtures::TempDir tmp;
  std::ofstream(tmp / "f.txt") << "old";
  EXPECT_THROW(write_atomically(tmp / "f.txt",
                                       [](const std::string& t) {
                                         std::ofstream(t) << "half";
                                         fail("disk full (simulated)");
                                       }),
               Error);
  EXPECT_EQ(fixtures::read_file(tmp / "f.txt"), "old");
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_THROW(write_atomically(tmp / "no/such/dir/f", [](const std::string&) {}), Error);
}

TEST(Checkpoint, AFileFromBirdplane01StillLoads) {
  // Written as birdplane 0.1 wrote it: the MLP as a torch::nn::Sequential (children 0..3, the
  // activation and LogSoftmax included) and the model section with the MLP's fields at the top level.
  fixtures::TempDir tmp;
  torch::manual_seed(1);
  torch::nn::Sequential old(torch::nn::Linear(3072, 16), torch::nn::Tanh(), torch::nn::Linear(16, 3),
                            torch::nn::LogSoftmax(1));
  const nlohmann::json model_config = {{"model", "mlp"},   {"in_features", 3072},  {"hidden", {16}},
                                       {"out_features", 3}, {"activation", "tanh"}, {"log_softmax", true},
                                       {"loss", "nll"},     {"classes", {"a", "b", "c"}},
                                       {"mean", {0.5, 0.5, 0.5}}, {"std", {0.25, 0.25, 0.25}}};
  torch::serialize::OutputArchive archive, model_archive;
  archive.write("birdplane_format", c10::IValue(int64_t{1}));
  archive.write("model_config", c10::IValue(model_config.dump()));
  archive.write("run_config", c10::IValue(std::string("{}")));
  archive.write("epoch", c10::IValue(int64_t{4}));
  old->save(model_archive);
  archive.write("model", model_archive);
  archive.save_to(tmp / "old.pt");

  auto ck = train::load_checkpoint(tmp / "old.pt");
  EXPECT_EQ(ck.epoch, 4);
  EXPECT_EQ(ck.config.spec.name, "mlp");
  EXPECT_EQ(ck.config.classes, (std::vector<std::string>{"a", "b", "c"}));
  auto x = torch::randn({5, 3, 32, 32});
  EXPECT_TRUE(torch::equal(ck.model->forward(x), old->forward(x.reshape({5, -1}))));
}

TEST(Checkpoint, ABadValueInsideTheFileNamesTheFileNotASetting) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  train::save_checkpoint(tmp / "c.pt", cfg, *nn::make_model(cfg.spec));
  // The same archive with the model description's activation damaged.
  auto j = saved_model_config(tmp / "c.pt");
  j["spec"]["activation"] = "gelu";
  write_checkpoint_with(tmp / "bad.pt", j, cfg.spec);
  expect_damaged_file_not_setting(tmp / "bad.pt", "gelu");
}

// Sizes in a model description are whole numbers within bounds, checked before any layer is built: a
// float (1e118 converted to an integer is undefined behaviour) or an enormous width names the file.
TEST(Checkpoint, SizesInsideTheFileAreWholeAndBounded) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  train::save_checkpoint(tmp / "c.pt", cfg, *nn::make_model(cfg.spec));
  const auto good = saved_model_config(tmp / "c.pt");
  const std::vector<std::pair<std::string, nlohmann::json>> damages = {
      {"num_classes", 1e118}, {"num_classes", 3.0}, {"hidden", nlohmann::json::array({int64_t{1} << 40})},
      {"image_shape", nlohmann::json::array({3, -32, 32})}, {"channels", 1e9}, {"blocks", -1}};
  for (const auto& [key, value] : damages) {
    auto j = good;
    j["spec"][key] = value;
    write_checkpoint_with(tmp / "bad.pt", j, cfg.spec);
    const std::string msg = message_of([&] { train::load_checkpoint(tmp / "bad.pt"); });
    EXPECT_NE(msg.find("bad.pt"), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find(key), std::string::npos) << key << ": " << msg;
  }
}

// What eval, predict and --resume rely on in a checkpoint they accept, each checked when it is read:
// one class name per output (predict reads a probability per name), a model description the registry
// builds (its refusal names the file, not a flag), a completed-epoch count from 0 (resume keeps that
// many metrics rows), optimizer state that fits its parameters (else the first step of the resumed run
// fails inside LibTorch).
TEST(Checkpoint, WhatReadersRelyOnIsCheckedOnLoad) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  train::save_checkpoint(tmp / "c.pt", cfg, *nn::make_model(cfg.spec));
  const auto good = saved_model_config(tmp / "c.pt");
  write_checkpoint_with(tmp / "ok.pt", good, cfg.spec, 2);
  EXPECT_EQ(train::load_checkpoint(tmp / "ok.pt").epoch, 2);

  auto j = good;
  j["classes"] = {"a", "b"};
  write_checkpoint_with(tmp / "bad.pt", j, cfg.spec);
  fixtures::expect_error([&] { train::load_checkpoint(tmp / "bad.pt"); },
                         {"bad.pt", "damaged", "2 class names for a model with 3 outputs"});

  write_checkpoint_with(tmp / "bad.pt", good, cfg.spec, -1);
  fixtures::expect_error([&] { train::load_checkpoint(tmp / "bad.pt"); }, {"bad.pt", "damaged", "-1 epochs"});

  j = good;
  j["spec"]["name"] = "net-width";
  j["spec"]["channels"] = 3;  // net-width halves its channels: an odd count is refused by the registry
  write_checkpoint_with(tmp / "bad.pt", j, cfg.spec);
  expect_damaged_file_not_setting(tmp / "bad.pt", "channels");

  // Adam state of a 16-wide model, loaded for an 8-wide one.
  auto wide = nn::make_model(cfg.spec);
  train::OptimizerConfig adam;
  adam.kind = train::OptimizerKind::kAdam;
  auto wide_optimizer = train::make_optimizer(adam, wide->parameters());
  for (auto& p : wide->parameters()) p.mutable_grad() = torch::ones_like(p);
  wide_optimizer->step();
  train::save_checkpoint(tmp / "opt.pt", cfg, *wide, wide_optimizer.get(), 1);
  auto narrow_spec = cfg.spec;
  narrow_spec.hidden = {8};
  auto narrow = nn::make_model(narrow_spec);
  auto narrow_optimizer = train::make_optimizer(adam, narrow->parameters());
  fixtures::expect_error([&] { train::load_optimizer_state(tmp / "opt.pt", *narrow_optimizer); },
                         {"opt.pt", "damaged", "optimizer state exp_avg of parameter 0", "[16, 3072]", "[8, 3072]"});
  auto same = nn::make_model(cfg.spec);
  auto same_optimizer = train::make_optimizer(adam, same->parameters());
  EXPECT_NO_THROW(train::load_optimizer_state(tmp / "opt.pt", *same_optimizer));
  expect_same_optimizer_state(*wide_optimizer, *same_optimizer);
}

// Normalization constants inside the file: one finite mean and one positive, finite std per channel
// (eval and predict divide every pixel by std).
TEST(Checkpoint, MeanAndStdInsideTheFileAreChecked) {
  fixtures::TempDir tmp;
  auto cfg = small_config();
  train::save_checkpoint(tmp / "c.pt", cfg, *nn::make_model(cfg.spec));
  const auto good = saved_model_config(tmp / "c.pt");
  const std::vector<std::tuple<std::string, nlohmann::json, std::string>> damages = {
      {"std", nlohmann::json::array({0.5, 0.0, 0.5}), "channel 1's std is 0"},
      {"std", nlohmann::json::array({0.5, -1.0, 0.5}), "channel 1's std is -1"},
      {"mean", nlohmann::json::array({0.5, 0.5}), "2 means and 3 stds for images of 3 channels"},
      {"std", nlohmann::json::array({0.5, 0.5, 0.5, 0.5}), "3 means and 4 stds"},
      {"mean", nlohmann::json::array({0.5, 1e309, 0.5}), "is damaged"}};  // inf: JSON has no such number
  for (const auto& [key, value, expected] : damages) {
    auto j = good;
    j[key] = value;
    write_checkpoint_with(tmp / "bad.pt", j, cfg.spec);
    const std::string msg = message_of([&] { train::load_checkpoint(tmp / "bad.pt"); });
    EXPECT_NE(msg.find("bad.pt: its model description is damaged"), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find(expected), std::string::npos) << key << ": " << msg;
  }
}
