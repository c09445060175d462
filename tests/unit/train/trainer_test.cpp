#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/stats.h"
#include "birdplane/nn/convnets.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/trainer.h"
#include "train/linear_kernels.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;

namespace {

// Trains `t` into a new run folder `path`, or resumes the one there.
train::TrainResult train_into(train::Trainer& t, const std::string& path, bool resume,
                              train::TrainObserver* observer = nullptr, train::StopToken stop = {}) {
  auto dir = resume ? train::RunDir::open(path) : train::RunDir::create(path);
  if (resume) {
    t.resume_from(dir);
  } else {
    dir.write_config(t.run_record());
  }
  return t.run(dir, observer, stop);
}

std::vector<at::Tensor> weights(const nn::Classifier& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().clone());
  return out;
}

struct SmallRun {
  fixtures::TempDir tmp;
  data::ImageSet train, val;
  SmallRun()
      : train(data::read_cifar10(fixtures::write_fake_cifar(tmp.path(), 30), data::Split::kTrain)),
        val(data::read_cifar10(data::batches_dir(tmp.path()), data::Split::kTest)) {}

  train::RunSpec config(int64_t epochs) const {
    train::RunSpec c;
    c.model.name = "mlp";
    c.model.hidden = {32};
    c.training.epochs = epochs;
    c.training.batch_size = 16;
    c.training.seed = 5;
    c.training.optimizer.momentum = 0.9;  // so the optimizer state matters for resume
    return c;
  }

  train::TrainResult run(const train::RunSpec& c, const std::string& name, bool resume,
                         std::vector<at::Tensor>* out = nullptr) {
    auto stats = data::channel_stats(train.images());
    train::Trainer t(c, train, val, stats.mean, stats.std);
    auto r = train_into(t, tmp / name, resume);
    if (out) *out = weights(t.model());
    return r;
  }
};

}  // namespace

TEST(Trainer, ResumedRunEndsBitIdenticalToAnUninterruptedOne) {
  SmallRun s;
  std::vector<at::Tensor> a, b;
  s.run(s.config(4), "whole", false, &a);
  s.run(s.config(2), "split", false);
  auto r = s.run(s.config(4), "split", true, &b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  // The resumed run's metrics hold all four epochs, and match the whole run's.
  auto m1 = train::read_metrics(s.tmp / "whole/metrics.csv");
  auto m2 = train::read_metrics(s.tmp / "split/metrics.csv");
  ASSERT_EQ(m1.size(), 4u);
  ASSERT_EQ(m2.size(), 4u);
  for (size_t e = 0; e < 4; ++e) EXPECT_DOUBLE_EQ(m1[e].train_loss, m2[e].train_loss);
  EXPECT_EQ(r.history.size(), 4u);
  for (const char* f : {"config.json", "checkpoint.pt", "model.pt", "metrics.csv", "results.json", "lock"})
    EXPECT_TRUE(fs::exists(s.tmp / (std::string("split/") + f))) << f;
}

TEST(Trainer, AResumedFusedRunEndsBitIdenticalToo) {
  // Plain SGD takes the fused step (the test above, with momentum, takes autograd).
  SmallRun s;
  auto fused = [&](int64_t epochs) {
    auto c = s.config(epochs);
    c.training.optimizer.momentum = 0;
    c.training.step = train::StepKind::kFused;
    return c;
  };
  std::vector<at::Tensor> a, b;
  s.run(fused(3), "whole", false, &a);
  s.run(fused(1), "split", false);
  s.run(fused(3), "split", true, &b);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

namespace {

// 160 training and 40 validation images: class 0 dark noise, class 1 bright noise (any working
// trainer separates them).
std::pair<data::ImageSet, data::ImageSet> separable_sets() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto labels = torch::arange(200, torch::kInt64).remainder(2);
  auto noise = torch::randint(0, 100, {200, 3, 32, 32}, gen, torch::kInt64);
  auto images = (noise + labels.view({-1, 1, 1, 1}) * 120).to(torch::kUInt8);
  return {data::ImageSet(images.slice(0, 0, 160), labels.slice(0, 0, 160), {"dark", "bright"}, "test: train"),
          data::ImageSet(images.slice(0, 160), labels.slice(0, 160), {"dark", "bright"}, "test: val")};
}

const std::vector<double> kMean = {0.5, 0.5, 0.5}, kStd = {0.25, 0.25, 0.25};

// Records what the trainer reports.
struct Recorder : train::TrainObserver {
  int64_t steps = 0;
  std::vector<int64_t> epochs;
  bool ended = false;
  int64_t stop_after_steps = -1;
  std::atomic<bool>* stop = nullptr;
  void on_step(const train::StepProgress& p) override {
    ++steps;
    EXPECT_LT(p.step, p.steps);
    if (stop && steps == stop_after_steps) stop->store(true);
  }
  void on_epoch(const train::EpochMetrics& m, int64_t) override { epochs.push_back(m.epoch); }
  void on_end(const train::TrainResult&) override { ended = true; }
};

}  // namespace

TEST(Trainer, LearnsASeparableTwoClassProblemAndReportsToItsObserver) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::RunSpec c;
  c.training.epochs = 3;
  c.training.batch_size = 16;
  train::Trainer t(c, train, val, kMean, kStd);
  Recorder rec;
  auto r = train_into(t, tmp / "run", false, &rec);
  EXPECT_EQ(r.final_train_accuracy, 1.0);
  EXPECT_EQ(r.final_val_accuracy, 1.0);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  EXPECT_EQ(rec.steps, 3 * 10);  // 160 images in batches of 16
  EXPECT_EQ(rec.epochs, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(rec.ended);
}

TEST(Trainer, AStopTokenStopsTheRunKeepingTheLastEpochThenItResumes) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::RunSpec c;
  c.training.epochs = 3;
  c.training.batch_size = 16;
  std::atomic<bool> stop{false};
  Recorder rec;
  rec.stop = &stop;
  rec.stop_after_steps = 15;  // in the middle of epoch 2
  {
    train::Trainer t(c, train, val, kMean, kStd);
    try {
      train_into(t, tmp / "run", false, &rec, train::StopToken(&stop));
      FAIL() << "expected Interrupted";
    } catch (const train::Interrupted& e) {
      EXPECT_EQ(e.epochs_done(), 1);
      EXPECT_EQ(e.run_dir(), tmp / "run");
      EXPECT_NE(std::string(e.what()).find("checkpoint.pt"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(rec.epochs, (std::vector<int64_t>{1}));
  EXPECT_FALSE(fs::exists(tmp / "run/model.pt"));
  // The same run continues from its checkpoint and ends like one never stopped.
  train::Trainer resumed(c, train, val, kMean, kStd);
  auto r = train_into(resumed, tmp / "run", true);
  train::Trainer whole(c, train, val, kMean, kStd);
  train_into(whole, tmp / "whole", false);
  auto a = weights(resumed.model()), b = weights(whole.model());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_EQ(r.history.size(), 3u);
}

TEST(Trainer, TrainsAnyClassifierThroughTheModelInterface) {
  // A convolutional model of the test's own: the trainer needs no change for it.
  struct TinyConv : nn::Classifier {
    explicit TinyConv(const nn::ModelSpec& spec) : nn::Classifier(spec) {
      conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)));
      fc = register_module("fc", torch::nn::Linear(4, spec.num_classes));
    }
    at::Tensor logits(const at::Tensor& x) override { return fc->forward(torch::tanh(conv->forward(x)).mean({2, 3})); }
    std::vector<nn::LayerRow> layer_rows() const override { return {}; }
    torch::nn::Conv2d conv{nullptr};
    torch::nn::Linear fc{nullptr};
  };
  // Registered under a name of its own, it trains, saves and reloads like a built-in preset.
  nn::register_model({"test-tiny-conv", "a test's convnet",
                      [](const nn::ModelSpec& spec) { return std::make_shared<TinyConv>(spec); }});
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::RunSpec c;
  c.model.name = "test-tiny-conv";
  c.training.epochs = 3;
  c.training.batch_size = 16;
  c.training.optimizer.lr = 0.1;
  train::Trainer t(c, train, val, kMean, kStd);
  EXPECT_FALSE(t.fused());  // no MLP: autograd
  auto r = train_into(t, tmp / "conv", false);
  EXPECT_GE(r.final_val_accuracy, 0.9);
  auto ck = train::load_checkpoint(tmp / "conv/model.pt");
  EXPECT_EQ(ck.config.spec.name, "test-tiny-conv");
  auto ev = train::evaluate(*ck.model, val, ck.config, c10::Device(c10::kCPU));
  EXPECT_EQ(ev.confusion.accuracy(), r.final_val_accuracy);
}

namespace {

// Trains `c` whole, and again as one epoch then a resume to the end, on separable_sets(); every tensor
// of the two state_dicts must be equal. Returns the whole run's result; `fused` gets whether it took
// the fused step.
train::TrainResult expect_resume_bit_identical(const train::RunSpec& c, bool* fused = nullptr) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::Trainer whole(c, train, val, kMean, kStd);
  if (fused) *fused = whole.fused();
  auto result = train_into(whole, tmp / "whole", false);
  auto first = c;
  first.training.epochs = 1;
  {
    train::Trainer t(first, train, val, kMean, kStd);
    train_into(t, tmp / "split", false);
  }
  train::Trainer resumed(c, train, val, kMean, kStd);
  train_into(resumed, tmp / "split", true);
  auto a = whole.model().state_dict(), b = resumed.model().state_dict();
  EXPECT_EQ(a.size(), b.size()) << c.model.name;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << c.model.name << " " << a[i].first;
  return result;
}

}  // namespace

TEST(Trainer, EveryConvNetPresetResumesBitIdentical) {
  // Dropout draws and batch-norm statistics included: the model's generator is seeded per epoch and
  // the running statistics travel in the checkpoint.
  for (const auto& name : nn::convnet_names()) {
    train::RunSpec c;
    c.model.name = name;
    c.model.channels = 4;
    c.model.blocks = 2;
    c.training.epochs = 2;
    c.training.batch_size = 32;
    c.training.optimizer.momentum = 0.9;
    c.training.optimizer.weight_decay = 1e-3;  // the book's L2 section, through the optimizer
    expect_resume_bit_identical(c);
  }
}

TEST(Trainer, NetAndNetWidthTakeTheFusedStepAndResumeBitIdentical) {
  // Plain SGD: net and net-width take the fused convnet step where the CPU has AVX-512 (the test above
  // uses momentum, so autograd); its weights must come back exactly after a resume, as autograd's do.
  for (const std::string name : {"net", "net-width"}) {
    train::RunSpec c;
    c.model.name = name;
    c.model.channels = 6;
    c.training.epochs = 3;
    c.training.batch_size = 24;  // 160 images: a short last batch every epoch
    bool fused = false;
    const auto r = expect_resume_bit_identical(c, &fused);
    EXPECT_EQ(fused, train::kernels::available()) << name;
    EXPECT_GE(r.final_val_accuracy, 0.9) << name;
  }
}

TEST(Trainer, StopsOnANonFiniteLossAndKeepsTheLastGoodCheckpoint) {
  SmallRun s;
  s.run(s.config(1), "nan", false);
  const auto before = fixtures::read_file(s.tmp / "nan/checkpoint.pt");
  auto c = s.config(3);
  c.training.optimizer.lr = 3e38;  // the weights overflow to inf, then inf - inf gives nan
  c.training.optimizer.momentum = 0;
  try {
    s.run(c, "nan", true);
    FAIL() << "expected the run to stop";
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "lr");
    EXPECT_NE(e.problem().find("became"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fixtures::read_file(s.tmp / "nan/checkpoint.pt"), before);
}

TEST(RunSpec, ValidatesSettingsAndNamesThem) {
  auto setting_of = [](const train::RunSpec& c) -> std::string {
    try {
      c.validate();
    } catch (const SettingError& e) {
      return e.setting();
    }
    return "";
  };
  train::RunSpec c;
  EXPECT_EQ(setting_of(c), "");
  c.training.epochs = 0;
  EXPECT_EQ(setting_of(c), "epochs");
  c = {};
  c.training.optimizer.lr = 0;
  EXPECT_EQ(setting_of(c), "lr");
  c = {};
  c.training.batch_size = 0;
  EXPECT_EQ(setting_of(c), "batch_size");
  c = {};
  c.model.name = "vgg";
  EXPECT_EQ(setting_of(c), "model");
  c = {};
  c.training.optimizer.nesterov = true;
  EXPECT_EQ(setting_of(c), "nesterov");
  c = {};
  c.training.loss = nn::LossKind::kMse;
  c.training.precision = train::Precision::kBf16;
  c.training.step = train::StepKind::kAutograd;
  auto j = c.to_json();
  EXPECT_EQ(j["training"]["precision"], "bf16");
  EXPECT_EQ(j["training"]["loss"], "mse");
  EXPECT_EQ(train::RunSpec::from_json(j).to_json(), j);
  j["training"]["step"] = "sometimes";
  EXPECT_THROW(train::RunSpec::from_json(j), SettingError);
}

TEST(Precision, Bf16ScopeRunsLinearInBfloat16AndRestoresFp32) {
  torch::nn::Linear lin(8, 4);
  auto x = torch::randn({3, 8});
  {
    train::PrecisionScope scope(true);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16);
  }
  // A model ending in LogSoftmax: bf16 linear layers, then log_softmax in float32 on the widened logits.
  nn::MlpOptions o;
  o.in_features = 8;
  o.hidden = {4};
  auto model = nn::make_mlp(o);
  auto out = train::forward_in_precision(*model, x, train::Precision::kBf16);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  at::Tensor logits;
  {
    train::PrecisionScope scope(true);
    auto linears = model->linears();  // holders to call forward on
    logits = linears[1]->forward(torch::tanh(linears[0]->forward(x)));
  }
  EXPECT_TRUE(torch::allclose(out, torch::log_softmax(logits.to(torch::kFloat), 1)));
  EXPECT_TRUE(torch::allclose(out, model->forward(x), 0, 0.05));  // close to fp32, not equal
  EXPECT_FALSE(torch::equal(out, model->forward(x)));
  EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
  {
    train::PrecisionScope off(false);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat);
  }
  fixtures::expect_error([] { train::parse_precision("fp16"); }, {"precision", "fp16", "bf16"});
}

TEST(Precision, Bf16TrainingLearnsKeepsFp32WeightsAndDiffersFromFp32) {
  auto [train, val] = separable_sets();
  std::vector<double> losses;
  for (auto precision : train::kPrecisions) {
    fixtures::TempDir tmp;
    train::RunSpec c;
    c.training.epochs = 3;
    c.training.batch_size = 16;
    c.training.precision = precision;
    train::Trainer t(c, train, val, kMean, kStd);
    auto r = train_into(t, tmp / "run", false);
    const auto name = train::to_string(precision);
    EXPECT_EQ(r.final_val_accuracy, 1.0) << name;
    for (const auto& p : t.model().parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat) << name;
    losses.push_back(r.history.back().train_loss);
  }
  // bf16 matmuls round differently: the same seed must not give the very same loss.
  EXPECT_NE(losses[0], losses[1]);
  EXPECT_NEAR(losses[0], losses[1], 0.05);
}

TEST(Trainer, FusedAndAutogradStepsTrainTheSameModel) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  std::vector<std::vector<at::Tensor>> models;
  std::vector<train::TrainResult> results;
  for (auto step : {train::StepKind::kFused, train::StepKind::kAutograd}) {
    train::RunSpec c;
    c.training.epochs = 3;
    c.training.batch_size = 16;
    c.training.step = step;
    train::Trainer t(c, train, val, kMean, kStd);
    EXPECT_EQ(t.fused(), step == train::StepKind::kFused);
    results.push_back(train_into(t, tmp / train::to_string(step), false));
    models.push_back(weights(t.model()));
  }
  auto& a = models[0];
  auto& b = models[1];
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(results[0].history[e].train_loss, results[1].history[e].train_loss, 1e-5) << "epoch " << e + 1;
    EXPECT_EQ(results[0].history[e].train_accuracy, results[1].history[e].train_accuracy) << "epoch " << e + 1;
  }
}

TEST(Trainer, StepFusedSaysWhyItCannotApply) {
  auto [train, val] = separable_sets();
  train::RunSpec c;
  c.training.step = train::StepKind::kFused;
  c.training.optimizer.momentum = 0.9;
  fixtures::expect_error([&] { train::Trainer(c, train, val, kMean, kStd); }, {"step", "fused", "plain SGD", "momentum"});
  c.training.optimizer.momentum = 0;
  c.training.step = train::StepKind::kAuto;
  train::Trainer t(c, train, val, kMean, kStd);
  EXPECT_TRUE(t.fused());
}

TEST(Trainer, RunRecordSaysWhatRanAndWhere) {
  auto [train, val] = separable_sets();
  train::RunSpec c;
  c.training.epochs = 2;
  train::Trainer t(c, train, val, kMean, kStd);
  const auto j = t.run_record();
  EXPECT_EQ(j["run"]["training"]["epochs"], 2);
  EXPECT_EQ(j["run"]["model"]["num_classes"], 2);  // filled in from the data
  EXPECT_EQ(j["model"]["model"], "book-small");
  EXPECT_EQ(j["model"]["classes"], (std::vector<std::string>{"dark", "bright"}));
  EXPECT_EQ(j["parameters"], 1574402);
  EXPECT_EQ(j["train_images"], 160);
  EXPECT_EQ(j["val_images"], 40);
  EXPECT_EQ(j["train_source"], "test: train");
  EXPECT_EQ(j["step_used"], "fused");
  EXPECT_TRUE(j["versions"].contains("birdplane"));
}

TEST(RunDir, LocksTheFolderAndRefusesToOverwriteOrOpenWhatIsNotARun) {
  fixtures::TempDir tmp;
  const std::string path = tmp / "r";
  {
    auto dir = train::RunDir::create(path);
    dir.write_config({{"train", 1}});
    EXPECT_EQ(dir.read_config()["train"], 1);
    fixtures::expect_error([&] { train::RunDir::open(path); }, {path, "in use by another birdplane process"});
    fixtures::expect_error([&] { train::RunDir::create(path); }, {path, "already exists"});
  }
  // The lock goes with the object; the folder stays and opens.
  auto again = train::RunDir::open(path);
  EXPECT_FALSE(again.has_checkpoint());
  fixtures::expect_error([&] { train::RunDir::open(tmp / "nothing"); }, {"does not exist"});
  fs::create_directories(tmp / "empty");
  fixtures::expect_error([&] { train::RunDir::open(tmp / "empty"); }, {"no config.json"});
  fixtures::write_text(tmp / "empty/config.json", "{not json");
  fs::remove(tmp / "empty/lock");
  fixtures::expect_error([&] { train::RunDir::open(tmp / "empty").read_config(); }, {"config.json", "not valid JSON"});
}

TEST(Metrics, ADamagedMetricsFileIsAnErrorNamingTheLine) {
  fixtures::TempDir tmp;
  fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n1,0.5\n2,abc\n");
  fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"m.csv line 3", "'abc'"});
  fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n1,0.5\n3,0.4\n");
  fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"line 3", "epoch 3"});
}
