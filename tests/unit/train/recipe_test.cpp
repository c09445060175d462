// The training recipe inside a run: learning-rate schedules reach every step (autograd and fused), the
// rate is in metrics.csv, runs with every recipe setting on resume bit-identical from a stop in the
// middle of an epoch, and the fused step steps aside for what it cannot do.
#include <atomic>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/train/run_dir.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;

namespace {

// 160 training and 40 validation images, 3 classes of noise at different brightness (learnable, not
// at once: the loss moves over several epochs).
std::pair<data::ImageSet, data::ImageSet> three_class_sets() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  auto labels = torch::arange(200, torch::kInt64).remainder(3);
  auto noise = torch::randint(0, 160, {200, 3, 8, 8}, gen, torch::kInt64);
  auto images = (noise + labels.view({-1, 1, 1, 1}) * 40).to(torch::kUInt8);
  const std::vector<std::string> names = {"a", "b", "c"};
  return {data::ImageSet(images.slice(0, 0, 160), labels.slice(0, 0, 160), names, "test: train"),
          data::ImageSet(images.slice(0, 160), labels.slice(0, 160), names, "test: val")};
}

const std::vector<double> kMean = {0.5, 0.5, 0.5}, kStd = {0.25, 0.25, 0.25};

struct StopAfter : train::TrainObserver {
  int64_t steps = 0, after = -1;
  std::atomic<bool>* stop = nullptr;
  void on_step(const train::StepProgress&) override {
    if (++steps == after) stop->store(true);
  }
};

std::vector<at::Tensor> weights(const nn::Classifier& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().clone());
  for (const auto& b : model.buffers()) out.push_back(b.detach().clone());
  return out;
}

// Trains `c` whole into tmp/whole, and again into tmp/split stopped after `stop_step` steps and resumed:
// the weights and every metrics.csv row but the times must be the same.
void expect_resume_bit_identical(const train::RunSpec& c, int64_t stop_step, bool expect_fused) {
  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  train::Trainer whole(c, train_set, val_set, kMean, kStd);
  EXPECT_EQ(whole.fused(), expect_fused);
  {
    auto dir = train::RunDir::create(tmp / "whole");
    dir.write_config(whole.run_record());
    whole.run(dir);
  }
  {
    std::atomic<bool> stop{false};
    StopAfter obs;
    obs.after = stop_step;
    obs.stop = &stop;
    train::Trainer first(c, train_set, val_set, kMean, kStd);
    auto dir = train::RunDir::create(tmp / "split");
    dir.write_config(first.run_record());
    EXPECT_THROW(first.run(dir, &obs, train::StopToken(&stop)), train::Interrupted);
  }
  train::Trainer resumed(c, train_set, val_set, kMean, kStd);
  auto dir = train::RunDir::open(tmp / "split");
  resumed.resume_from(dir);
  EXPECT_GT(resumed.start_epoch(), 0);
  resumed.run(dir);
  const auto a = weights(whole.model()), b = weights(resumed.model());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
  const auto m1 = train::read_metrics(tmp / "whole/metrics.csv"), m2 = train::read_metrics(tmp / "split/metrics.csv");
  ASSERT_EQ(m1.size(), m2.size());
  for (size_t e = 0; e < m1.size(); ++e) {
    EXPECT_EQ(m1[e].train_loss, m2[e].train_loss) << "epoch " << e + 1;
    EXPECT_EQ(m1[e].val_loss, m2[e].val_loss) << "epoch " << e + 1;
    EXPECT_EQ(m1[e].lr, m2[e].lr) << "epoch " << e + 1;
  }
}

train::RunSpec small_mlp(int64_t epochs) {
  train::RunSpec c;
  c.model.name = "mlp";
  c.model.hidden = {16};
  c.training.epochs = epochs;
  c.training.batch_size = 16;  // 10 steps an epoch
  c.training.seed = 7;
  return c;
}

}  // namespace

// Per-step cosine after a warmup on the fused step: metrics.csv's lr is the rate of each epoch's last
// step, as LrSchedule gives it; a resume goes on with the same rates.
TEST(Recipe, ScheduleReachesTheFusedStepAndMetricsAndResumes) {
  auto c = small_mlp(4);
  c.training.optimizer.lr = 0.05;
  c.training.schedule.kind = train::ScheduleKind::kCosine;
  c.training.schedule.per = train::ScheduleUnit::kStep;
  c.training.schedule.warmup = 5;
  c.training.schedule.min_lr = 0.001;
  expect_resume_bit_identical(c, 15, /*fused=*/true);

  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  train::Trainer t(c, train_set, val_set, kMean, kStd);
  auto dir = train::RunDir::create(tmp / "r");
  const auto r = t.run(dir);
  const train::LrSchedule schedule(c.training.schedule, 4, 10);
  ASSERT_EQ(r.history.size(), 4u);
  for (int64_t e = 0; e < 4; ++e) EXPECT_DOUBLE_EQ(r.history[e].lr, schedule.rate(0.05, e, 9)) << e;
  EXPECT_LT(r.history[3].lr, 0.01);
  // The same run at a constant rate trains differently: the schedule reached the step.
  auto constant = small_mlp(4);
  constant.training.optimizer.lr = 0.05;
  train::Trainer u(constant, train_set, val_set, kMean, kStd);
  auto dir2 = train::RunDir::create(tmp / "c");
  const auto rc = u.run(dir2);
  EXPECT_NE(rc.history[3].train_loss, r.history[3].train_loss);
  EXPECT_EQ(rc.history[3].lr, 0.05);
}

// Every recipe setting of this change at once, through autograd, with a stateful schedule
// (reduce-on-plateau): stopped in the middle of epoch 3 and resumed, the run ends bit for bit where an
// uninterrupted one ends.
TEST(Recipe, EverySettingAtOnceResumesBitIdentical) {
  auto c = small_mlp(6);
  auto& t = c.training;
  t.optimizer.kind = train::OptimizerKind::kAdamW;
  t.optimizer.lr = 0.01;
  t.optimizer.weight_decay = 0.05;
  t.optimizer.no_decay_bias_norm = true;
  t.optimizer.head_lr_multiplier = 3;
  t.schedule.kind = train::ScheduleKind::kPlateau;
  t.schedule.plateau_patience = 0;
  t.schedule.plateau_factor = 0.5;
  t.schedule.plateau_threshold = 0.5;  // almost every validation counts as a plateau
  t.label_smoothing = 0.1;
  t.class_weights = "auto";
  t.clip_grad_norm = 0.5;
  t.clip_grad_value = 0.1;
  expect_resume_bit_identical(c, 25, /*fused=*/false);

  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  train::Trainer trainer(c, train_set, val_set, kMean, kStd);
  auto dir = train::RunDir::create(tmp / "r");
  const auto r = trainer.run(dir);
  EXPECT_LT(r.history.back().lr, 0.01) << "the plateau schedule never reduced the rate";
}

TEST(Recipe, TheFusedStepStepsAsideForWhatItCannotDo) {
  auto [train_set, val_set] = three_class_sets();
  auto c = small_mlp(1);
  train::Trainer plain(c, train_set, val_set, kMean, kStd);
  EXPECT_TRUE(plain.fused());
  for (int k = 0; k < 4; ++k) {
    auto d = small_mlp(1);
    if (k == 0) d.training.label_smoothing = 0.1;
    if (k == 1) d.training.class_weights = "1,2,3";
    if (k == 2) d.training.clip_grad_norm = 1;
    if (k == 3) d.training.optimizer.head_lr_multiplier = 2;
    train::Trainer t(d, train_set, val_set, kMean, kStd);
    EXPECT_FALSE(t.fused()) << k;
    d.training.step = train::StepKind::kFused;
    fixtures::expect_error([&] { train::Trainer(d, train_set, val_set, kMean, kStd); }, {"step", "fused"});
  }
  auto w = small_mlp(1);
  w.training.class_weights = "1,2";
  fixtures::expect_error([&] { train::Trainer(w, train_set, val_set, kMean, kStd); },
                         {"class_weights", "2 weights", "3 classes"});
}
