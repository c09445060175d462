#include <filesystem>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/stats.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;

namespace {

struct SmallRun {
  fixtures::TempDir tmp;
  data::Cifar10 train, val;
  SmallRun()
      : train(fixtures::write_fake_cifar(tmp.path(), 30), data::Split::kTrain),
        val(data::batches_dir(tmp.path()), data::Split::kTest) {}

  train::TrainConfig config(int64_t epochs) const {
    train::TrainConfig c;
    c.model = "mlp";
    c.hidden = {32};
    c.epochs = epochs;
    c.batch_size = 16;
    c.seed = 5;
    c.optimizer.momentum = 0.9;  // so the optimizer state matters for resume
    return c;
  }

  train::TrainResult run(const train::TrainConfig& c, const std::string& name, bool resume,
                         torch::nn::Sequential* out = nullptr) {
    auto stats = data::channel_stats(train.images());
    const std::string dir = tmp / name;
    fs::create_directories(dir);
    train::Trainer t(c, train, val, stats.mean, stats.std, dir, resume);
    std::ostringstream log;
    auto r = t.run(log, false);
    if (out) *out = t.model();
    return r;
  }
};

}  // namespace

TEST(Trainer, ResumedRunEndsBitIdenticalToAnUninterruptedOne) {
  SmallRun s;
  torch::nn::Sequential whole{nullptr}, resumed{nullptr};
  s.run(s.config(4), "whole", false, &whole);
  s.run(s.config(2), "split", false);
  auto r = s.run(s.config(4), "split", true, &resumed);
  auto a = whole->parameters(), b = resumed->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  // The resumed run's metrics hold all four epochs, and match the whole run's.
  auto m1 = train::read_metrics(s.tmp / "whole/metrics.csv");
  auto m2 = train::read_metrics(s.tmp / "split/metrics.csv");
  ASSERT_EQ(m1.size(), 4u);
  ASSERT_EQ(m2.size(), 4u);
  for (size_t e = 0; e < 4; ++e) EXPECT_DOUBLE_EQ(m1[e].train_loss, m2[e].train_loss);
  EXPECT_EQ(r.history.size(), 4u);
  for (const char* f : {"checkpoint.pt", "model.pt", "metrics.csv", "results.json"})
    EXPECT_TRUE(fs::exists(s.tmp / (std::string("split/") + f))) << f;
}

TEST(Trainer, AResumedFusedRunEndsBitIdenticalToo) {
  // Plain SGD takes the fused step (the test above, with momentum, takes autograd).
  SmallRun s;
  auto fused = [&](int64_t epochs) {
    auto c = s.config(epochs);
    c.optimizer.momentum = 0;
    c.step = "fused";
    return c;
  };
  torch::nn::Sequential whole{nullptr}, resumed{nullptr};
  s.run(fused(3), "whole", false, &whole);
  s.run(fused(1), "split", false);
  s.run(fused(3), "split", true, &resumed);
  auto a = whole->parameters(), b = resumed->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

namespace {

// 160 training and 40 validation images: class 0 dark noise, class 1 bright noise (any working
// trainer separates them).
std::pair<data::Cifar10, data::Cifar10> separable_sets() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto labels = torch::arange(200, torch::kInt64).remainder(2);
  auto noise = torch::randint(0, 100, {200, 3, 32, 32}, gen, torch::kInt64);
  auto images = (noise + labels.view({-1, 1, 1, 1}) * 120).to(torch::kUInt8);
  return {data::Cifar10(images.slice(0, 0, 160), labels.slice(0, 0, 160), {"dark", "bright"}),
          data::Cifar10(images.slice(0, 160), labels.slice(0, 160), {"dark", "bright"})};
}

}  // namespace

TEST(Trainer, LearnsASeparableTwoClassProblem) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::TrainConfig c;
  c.epochs = 3;
  c.batch_size = 16;
  train::Trainer t(c, train, val, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, tmp.path(), false);
  std::ostringstream log;
  auto r = t.run(log, false);
  EXPECT_EQ(r.final_train_accuracy, 1.0);
  EXPECT_EQ(r.final_val_accuracy, 1.0);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  EXPECT_NE(log.str().find("epoch 3/3"), std::string::npos) << log.str();
}

TEST(Trainer, StopsOnANonFiniteLossAndKeepsTheLastGoodCheckpoint) {
  SmallRun s;
  s.run(s.config(1), "nan", false);
  const auto before = fixtures::read_file(s.tmp / "nan/checkpoint.pt");
  auto c = s.config(3);
  c.optimizer.lr = 3e38;  // the weights overflow to inf, then inf - inf gives nan
  c.optimizer.momentum = 0;
  try {
    s.run(c, "nan", true);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("became"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--lr"), std::string::npos) << msg;
  }
  EXPECT_EQ(fixtures::read_file(s.tmp / "nan/checkpoint.pt"), before);
}

TEST(TrainConfig, ValidatesFlags) {
  train::TrainConfig c;
  c.epochs = 0;
  EXPECT_THROW(c.validate(), Error);
  c = {};
  c.optimizer.lr = 0;
  EXPECT_THROW(c.validate(), Error);
  c = {};
  c.batch_size = 0;
  EXPECT_THROW(c.validate(), Error);
  c = {};
  c.model = "vgg";
  EXPECT_THROW(c.validate(), Error);
  c = {};
  c.optimizer.name = "rmsprop";
  EXPECT_THROW(c.validate(), Error);
  c = {};
  c.loss = "hinge";
  EXPECT_THROW(c.validate(), Error);
  c = {};
  auto j = c.to_json();
  EXPECT_EQ(train::TrainConfig::from_json(j).to_json(), j);
}

TEST(Precision, Bf16ScopeRunsLinearInBfloat16AndRestoresFp32) {
  torch::nn::Linear lin(8, 4);
  auto x = torch::randn({3, 8});
  {
    birdplane::train::PrecisionScope scope(true);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16);
  }
  // A model ending in LogSoftmax: bf16 linear layers, then log_softmax in float32 on the widened logits.
  torch::nn::Sequential model(torch::nn::Linear(8, 4), torch::nn::Tanh(), torch::nn::Linear(4, 2),
                              torch::nn::LogSoftmax(1));
  auto out = birdplane::train::forward_in_precision(model, x, "bf16");
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  at::Tensor logits;
  {
    birdplane::train::PrecisionScope scope(true);
    logits = model[2]->as<torch::nn::Linear>()->forward(torch::tanh(model[0]->as<torch::nn::Linear>()->forward(x)));
  }
  EXPECT_TRUE(torch::allclose(out, torch::log_softmax(logits.to(torch::kFloat), 1)));
  EXPECT_TRUE(torch::allclose(out, model->forward(x), 0, 0.05));  // close to fp32, not equal
  EXPECT_FALSE(torch::equal(out, model->forward(x)));
  EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
  {
    birdplane::train::PrecisionScope off(false);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat);
  }
  birdplane::fixtures::expect_error([] { birdplane::train::check_precision("fp16"); }, {"--precision", "fp16", "bf16"});
}

TEST(Precision, Bf16TrainingLearnsKeepsFp32WeightsAndDiffersFromFp32) {
  auto [train, val] = separable_sets();
  std::vector<double> losses;
  for (const char* precision : {"fp32", "bf16"}) {
    fixtures::TempDir tmp;
    train::TrainConfig c;
    c.epochs = 3;
    c.batch_size = 16;
    c.precision = precision;
    train::Trainer t(c, train, val, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, tmp.path(), false);
    std::ostringstream log;
    auto r = t.run(log, false);
    EXPECT_EQ(r.final_val_accuracy, 1.0) << precision;
    for (const auto& p : t.model()->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat) << precision;
    losses.push_back(r.history.back().train_loss);
  }
  // bf16 matmuls round differently: the same seed must not give the very same loss.
  EXPECT_NE(losses[0], losses[1]);
  EXPECT_NEAR(losses[0], losses[1], 0.05);
}

TEST(Trainer, FusedAndAutogradStepsTrainTheSameModel) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  std::vector<torch::nn::Sequential> models;
  std::vector<train::TrainResult> results;
  for (const char* step : {"fused", "autograd"}) {
    train::TrainConfig c;
    c.epochs = 3;
    c.batch_size = 16;
    c.step = step;
    fs::create_directories(tmp / step);
    train::Trainer t(c, train, val, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, tmp / step, false);
    EXPECT_EQ(t.fused(), std::string(step) == "fused");
    std::ostringstream log;
    results.push_back(t.run(log, false));
    models.push_back(t.model());
  }
  auto a = models[0]->parameters(), b = models[1]->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(results[0].history[e].train_loss, results[1].history[e].train_loss, 1e-5) << "epoch " << e + 1;
    EXPECT_EQ(results[0].history[e].train_accuracy, results[1].history[e].train_accuracy) << "epoch " << e + 1;
  }
}

TEST(Trainer, StepFusedSaysWhyItCannotApply) {
  auto [train, val] = separable_sets();
  fixtures::TempDir tmp;
  train::TrainConfig c;
  c.step = "fused";
  c.optimizer.momentum = 0.9;
  fixtures::expect_error([&] { train::Trainer(c, train, val, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, tmp / "m", false); },
                         {"--step fused", "plain SGD", "--momentum"});
  c.optimizer.momentum = 0;
  c.step = "auto";
  train::Trainer t(c, train, val, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, tmp / "auto", false);
  EXPECT_TRUE(t.fused());
  c.step = "sometimes";
  fixtures::expect_error([&] { c.validate(); }, {"--step", "sometimes", "auto, fused or autograd"});
}
