// Learning-rate schedules against torch.optim.lr_scheduler (tests/golden/data/schedules.pt, written by
// tools/golden/schedules.py): the rate of two parameter groups before every batch of an 8-epoch run of
// 5 batches, and the settings' checks.
#include <cmath>
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include "birdplane/train/schedule.h"
#include "support/expect_error.h"
#include "support/golden.h"

using namespace birdplane;
using train::LrSchedule;
using train::ScheduleKind;
using train::ScheduleSpec;
using train::ScheduleUnit;

namespace {

constexpr int64_t kEpochs = 8, kSteps = 5;
constexpr double kBases[] = {0.1, 0.5};

// Compares every batch's rate of both groups; `observe` (plateau) gets each epoch's figure after it.
void expect_rates(const std::string& name, const ScheduleSpec& spec, const std::function<double(int64_t)>& metric = {}) {
  fixtures::Golden g("schedules.pt");
  const auto expected = g[name].contiguous();
  ASSERT_EQ(expected.size(0), kEpochs * kSteps) << name;
  const double* e = expected.data_ptr<double>();
  LrSchedule schedule(spec, kEpochs, kSteps);
  int64_t checked = 0;
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    for (int64_t step = 0; step < kSteps; ++step) {
      for (int group = 0; group < 2; ++group) {
        const double want = e[(epoch * kSteps + step) * 2 + group];
        const double got = schedule.rate(kBases[group], epoch, step);
        EXPECT_NEAR(got, want, 1e-12 + 1e-9 * std::abs(want))
            << name << ": epoch " << epoch << " batch " << step << " group " << group;
        ++checked;
      }
    }
    if (metric) schedule.observe(metric(epoch));
  }
  EXPECT_EQ(checked, kEpochs * kSteps * 2);
}

}  // namespace

TEST(GoldenSchedule, StepMultiStepExponentialPerEpoch) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kStep;
  s.step_size = 3;
  s.gamma = 0.5;
  expect_rates("step_epoch", s);
  s = {};
  s.kind = ScheduleKind::kMultiStep;
  s.milestones = {2, 5};
  expect_rates("multistep_epoch", s);
  s = {};
  s.kind = ScheduleKind::kExponential;
  s.gamma = 0.8;
  expect_rates("exponential_epoch", s);
}

TEST(GoldenSchedule, CosineWithFloorAndWithWarmupPerStep) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kCosine;
  s.min_lr = 0.001;
  expect_rates("cosine_epoch", s);
  s = {};
  s.kind = ScheduleKind::kCosine;
  s.per = ScheduleUnit::kStep;
  s.warmup = 7;
  s.warmup_factor = 0.1;
  expect_rates("cosine_step_warmup", s);
}

TEST(GoldenSchedule, WarmupBeforeStepAndConstant) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kStep;
  s.step_size = 2;
  s.gamma = 0.5;
  s.warmup = 2;
  expect_rates("step_epoch_warmup", s);
  s = {};
  s.warmup = 3;
  s.warmup_factor = 0.25;
  expect_rates("constant_epoch_warmup", s);
}

TEST(GoldenSchedule, OneCycleCosineAndLinear) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kOneCycle;
  EXPECT_EQ(s.unit(), ScheduleUnit::kStep);
  expect_rates("onecycle", s);
  s.pct_start = 0.25;
  s.div_factor = 10;
  s.final_div_factor = 100;
  s.anneal_linear = true;
  expect_rates("onecycle_linear", s);
}

TEST(GoldenSchedule, PiecewiseThroughPoints) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kPiecewise;
  s.points = train::parse_points("0:0.2, 0.23:1,1:0.07");
  ASSERT_EQ(s.points.size(), 3u);
  expect_rates("piecewise", s);
}

TEST(GoldenSchedule, ReduceOnPlateauOfLossAndAccuracy) {
  fixtures::Golden g("schedules.pt");
  const auto loss = g["loss_curve"].contiguous(), accuracy = g["accuracy_curve"].contiguous();
  ScheduleSpec s;
  s.kind = ScheduleKind::kPlateau;
  s.plateau_factor = 0.5;
  s.plateau_patience = 1;
  s.plateau_cooldown = 1;
  s.min_lr = 0.03;
  expect_rates("plateau_loss", s, [&](int64_t e) { return loss.data_ptr<double>()[e]; });
  s = {};
  s.kind = ScheduleKind::kPlateau;
  s.plateau_metric = train::Monitor::kValAccuracy;
  s.plateau_patience = 0;
  expect_rates("plateau_accuracy", s, [&](int64_t e) { return accuracy.data_ptr<double>()[e]; });
}

// A resumed run rebuilds the schedule and loads the saved state: it must go on as the first did.
TEST(Schedule, PlateauStateResumes) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kPlateau;
  s.plateau_patience = 0;
  s.plateau_cooldown = 2;
  LrSchedule a(s, 10, 1);
  const double curve[] = {1.0, 1.2, 1.3, 0.5, 0.6, 0.7, 0.8, 0.9};
  for (int i = 0; i < 4; ++i) a.observe(curve[i]);
  LrSchedule b(s, 10, 1);
  b.load_state(nlohmann::json::parse(a.state().dump()));
  EXPECT_EQ(b.state(), a.state());
  for (int i = 4; i < 8; ++i) {
    a.observe(curve[i]);
    b.observe(curve[i]);
    EXPECT_EQ(a.rate(0.1, i, 0), b.rate(0.1, i, 0)) << i;
  }
  EXPECT_LT(a.rate(0.1, 8, 0), 0.1);  // the curve did reduce the rate
}

TEST(Schedule, JsonRoundTripAndOldRuns) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kPiecewise;
  s.per = ScheduleUnit::kEpoch;
  s.points = {{0, 0.5}, {0.5, 1}, {1, 0}};
  s.warmup = 1;
  s.anneal_linear = true;
  const auto j = s.to_json();
  EXPECT_EQ(ScheduleSpec::from_json(j).to_json(), j);
  // A run from before schedules has no "schedule" object: the constant rate of those runs.
  const auto old = ScheduleSpec::from_json(nlohmann::json());
  EXPECT_EQ(old.kind, ScheduleKind::kConstant);
  EXPECT_FALSE(LrSchedule(old, 3, 2).varies());
  EXPECT_EQ(LrSchedule(old, 3, 2).rate(0.25, 2, 1), 0.25);
}

TEST(Schedule, BadSettingsNameTheSetting) {
  using fixtures::expect_error;
  expect_error([] { train::parse_schedule("triangle"); }, {"schedule", "triangle", "cosine"});
  expect_error([] { train::parse_points("0:0.2,0.5"); }, {"lr_points", "0.5"});
  expect_error([] { train::parse_milestones("3,x"); }, {"milestones", "x"});
  ScheduleSpec s;
  s.warmup = 10;
  expect_error([&] { s.validate(10); }, {"warmup", "10"});
  s.warmup = -1;
  expect_error([&] { s.validate(10); }, {"warmup", "-1"});
  s = {};
  s.kind = ScheduleKind::kCosine;
  s.per = ScheduleUnit::kStep;
  s.warmup = 30;
  expect_error([&] { LrSchedule(s, 3, 10); }, {"warmup", "30"});  // 30 steps of a 30-step run
  s = {};
  s.kind = ScheduleKind::kMultiStep;
  s.milestones = {5, 3};
  expect_error([&] { s.validate(10); }, {"milestones", "5,3"});
  s.milestones = {3, 12};
  expect_error([&] { s.validate(10); }, {"milestones", "12"});
  s = {};
  s.kind = ScheduleKind::kPiecewise;
  s.points = {{0.1, 1}, {1, 0}};
  expect_error([&] { s.validate(10); }, {"lr_points", "at 0"});
  s = {};
  s.kind = ScheduleKind::kOneCycle;
  s.warmup = 2;
  expect_error([&] { s.validate(10); }, {"warmup", "onecycle"});
  s = {};
  s.kind = ScheduleKind::kPlateau;
  s.per = ScheduleUnit::kStep;
  expect_error([&] { s.validate(10); }, {"schedule_per", "plateau"});
  s.per.reset();
  s.plateau_patience = -1;
  expect_error([&] { s.validate(10); }, {"plateau_patience", "-1"});
}

// A plateau state read back from a checkpoint is a file's value: a huge reduction count ends at the
// floor at once, and a damaged state is an Error.
TEST(Schedule, ASavedPlateauStateIsNotTrusted) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kPlateau;
  s.min_lr = 0.001;
  LrSchedule a(s, 10, 1);
  a.load_state({{"best", 0.5}, {"bad_epochs", 0}, {"cooldown_left", 0}, {"reductions", int64_t{1} << 60}});
  EXPECT_NEAR(a.rate(0.1, 0, 0), 0.001, 1e-12);  // reduced to the floor; 2^60 steps would never end
  fixtures::expect_error([&] { a.load_state({{"bad_epochs", -1}, {"cooldown_left", 0}, {"reductions", 0}}); },
                         {"negative"});
  fixtures::expect_error([&] { a.load_state({{"bad_epochs", 1.5}, {"cooldown_left", 0}, {"reductions", 0}}); },
                         {"bad_epochs"});
}
