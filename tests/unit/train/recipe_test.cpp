// The training recipe inside a run: learning-rate schedules reach every step (autograd and fused), the
// rate is in metrics.csv, runs with every recipe setting on resume bit-identical from a stop in the
// middle of an epoch, and the fused step steps aside for what it cannot do.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/train/checkpoint.h"
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
  t.balanced_sampler = true;
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

// net (the fused convnet step, which writes gradients for the optimizer beyond plain SGD) with the
// modern recipe and a clip: fused, and bit-identical after a stop in the middle of an epoch. Class
// weights make it step aside with the reason in config.json.
TEST(Recipe, NetTakesTheWholeRecipeOnTheFusedStepAndResumes) {
  auto [train_set, val_set] = three_class_sets();
  train::RunSpec c;
  c.model.name = "net";
  c.model.image_shape = {3, 8, 8};
  c.training.epochs = 4;
  c.training.batch_size = 32;
  c.training.device = train::DeviceKind::kCpu;
  train::apply_recipe(c.training, "modern", [](const std::string&) { return false; });
  c.training.mix.cutmix_alpha = 1.0;  // mixup and cutmix, switching between them
  c.training.clip_grad_norm = 0.5;
  c.training.schedule.warmup = 1;
  train::Trainer probe(c, train_set, val_set, kMean, kStd);
  if (!probe.fused()) GTEST_SKIP() << "no fused convnet step on this CPU: " << probe.step_note();
  EXPECT_EQ(probe.step_note(), "");
  EXPECT_EQ(probe.run_record()["step_used"], "fused");
  expect_resume_bit_identical(c, 7, /*fused=*/true);
  c.training.class_weights = "auto";
  train::Trainer weighted(c, train_set, val_set, kMean, kStd);
  EXPECT_FALSE(weighted.fused());
  EXPECT_NE(weighted.run_record()["step_note"].get<std::string>().find("class weights"), std::string::npos);
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

// best.pt follows the monitored figure; early stopping ends the run after `early_stopping` validations
// without an improvement larger than min_delta; model.pt then holds the best epoch's weights.
TEST(Recipe, EarlyStoppingKeepsTheBestEpochAsTheModel) {
  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  auto c = small_mlp(10);
  c.training.min_delta = 100;  // nothing after the first validation counts as an improvement
  c.training.early_stopping = 2;
  c.training.final_best = true;
  train::Trainer t(c, train_set, val_set, kMean, kStd);
  train::TrainResult r;
  {
    auto dir = train::RunDir::create(tmp / "r");
    dir.write_config(t.run_record());
    r = t.run(dir);
  }
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 3u);  // epoch 1 is the best; epochs 2 and 3 are the two without improvement
  EXPECT_EQ(r.model_epoch, 1);
  EXPECT_TRUE(r.model_from_best);
  const auto results = nlohmann::json::parse(fixtures::read_file(tmp / "r/results.json"));
  EXPECT_EQ(results["stopped_early"], true);
  EXPECT_EQ(results["model_epoch"], 1);
  EXPECT_EQ(results["best"]["epoch"], 1);
  EXPECT_EQ(results["best"]["monitor"], "val_loss");
  EXPECT_DOUBLE_EQ(results["best"]["value"].get<double>(), r.history[0].val_loss);
  // model.pt holds best.pt's weights, not the last epoch's (checkpoint.pt).
  const auto best = train::load_checkpoint(tmp / "r/best.pt"), model = train::load_checkpoint(tmp / "r/model.pt"),
             last = train::load_checkpoint(tmp / "r/checkpoint.pt");
  EXPECT_EQ(last.epoch, 3);
  const auto wb = weights(*best.model), wm = weights(*model.model), wl = weights(*last.model);
  bool differs_from_last = false;
  for (size_t i = 0; i < wb.size(); ++i) {
    EXPECT_TRUE(torch::equal(wb[i], wm[i])) << i;
    differs_from_last = differs_from_last || !torch::equal(wb[i], wl[i]);
  }
  EXPECT_TRUE(differs_from_last);
  // A resume of the stopped run trains no further.
  train::Trainer again(c, train_set, val_set, kMean, kStd);
  auto reopened = train::RunDir::open(tmp / "r");
  again.resume_from(reopened);
  EXPECT_EQ(again.run(reopened).history.size(), 3u);
}

// The best epoch comes back after a stop: a resumed run that keeps the best model ends with the same
// bits as one never stopped (best.pt is read back on resume).
TEST(Recipe, TheBestModelSurvivesAResume) {
  auto c = small_mlp(5);
  c.training.optimizer.lr = 0.5;  // a rate high enough that validation does not improve every epoch
  c.training.monitor = train::Monitor::kValAccuracy;
  c.training.final_best = true;
  c.training.early_stopping = 3;
  expect_resume_bit_identical(c, 25, /*fused=*/true);
}

// The weight average: validation uses it, model.pt holds it, and a resume from the middle of an epoch
// ends bit-identical (the average and its count are in the checkpoint).
TEST(Recipe, TheWeightAverageIsTheModelAndResumes) {
  auto c = small_mlp(4);
  c.training.optimizer.lr = 0.1;
  c.training.ema_decay = 0.8;
  c.training.ema_every = 2;
  c.training.ema_warmup = 1;
  expect_resume_bit_identical(c, 25, /*fused=*/true);

  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  train::Trainer t(c, train_set, val_set, kMean, kStd);
  auto dir = train::RunDir::create(tmp / "r");
  t.run(dir);
  const auto last = train::load_checkpoint(tmp / "r/checkpoint.pt"), model = train::load_checkpoint(tmp / "r/model.pt");
  ASSERT_TRUE(last.averaged);
  EXPECT_FALSE(model.averaged);  // model.pt is the average itself
  EXPECT_EQ(last.trainer_state["averaged"], 4 * 5 - 5);  // 5 updates an epoch, the first epoch's restarted
  const auto wa = weights(*last.averaged), wm = weights(*model.model), wl = weights(*last.model);
  bool differs = false;
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_TRUE(torch::equal(wa[i], wm[i])) << i;
    differs = differs || !torch::equal(wa[i], wl[i]);
  }
  EXPECT_TRUE(differs) << "the average must differ from the last weights";
}

// Mixup and cutmix are drawn per batch from the run's seed: a resumed run mixes the same batches.
TEST(Recipe, MixedBatchesResumeBitIdentical) {
  auto c = small_mlp(3);
  c.training.mix.mixup_alpha = 0.2;
  c.training.mix.cutmix_alpha = 1.0;
  c.training.label_smoothing = 0.1;
  expect_resume_bit_identical(c, 15, /*fused=*/false);
}

// Test-time augmentation: the mean of the logits over the views, recorded in the model file; with the
// mirror among the views a model answers an image and its mirror alike.
TEST(Recipe, TestTimeAugmentationIsRecordedAndMirrorInvariant) {
  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  auto c = small_mlp(2);
  c.training.tta = train::Tta::kFlip;
  train::Trainer t(c, train_set, val_set, kMean, kStd);
  auto dir = train::RunDir::create(tmp / "r");
  t.run(dir);
  const auto saved = train::load_checkpoint(tmp / "r/model.pt");
  EXPECT_EQ(saved.config.tta, train::Tta::kFlip);
  auto& model = *saved.model;
  model.eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 3, 8, 8});
  // The MLP ends in LogSoftmax: log_softmax of the mean of the two views' logits.
  const auto want = torch::log_softmax((model.logits(x) + model.logits(x.flip({3}))) / 2, 1);
  const auto got = train::forward_with_tta(model, x, train::Precision::kFp32, train::Tta::kFlip);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::equal(got, train::forward_with_tta(model, x.flip({3}), train::Precision::kFp32, train::Tta::kFlip)));
  // flip-shift: six views, the image and its copies shifted a pixel down-right and up-left (reflected at
  // the border), each with its mirror; the image's own pair weighs half, each shifted pair a quarter.
  const auto padded = torch::reflection_pad2d(x, {1, 1, 1, 1});
  auto pair = [&](const at::Tensor& v) { return model.logits(v.contiguous()) + model.logits(v.flip({3}).contiguous()); };
  const auto mean = pair(x) / 4 + pair(padded.slice(2, 0, 8).slice(3, 0, 8)) / 8 +
                    pair(padded.slice(2, 2, 10).slice(3, 2, 10)) / 8;
  const auto six = train::forward_with_tta(model, x, train::Precision::kFp32, train::Tta::kFlipShift);
  EXPECT_LE((six - torch::log_softmax(mean, 1)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((six - got).abs().max().item<double>(), 1e-7);  // the shifted views count
  // Without augmentation the output is the plain forward pass, which a mirror changes.
  const auto plain = train::forward_with_tta(model, x, train::Precision::kFp32, train::Tta::kNone);
  EXPECT_TRUE(torch::equal(plain, model.forward(x)));
  EXPECT_FALSE(torch::equal(plain, model.forward(x.flip({3}))));
}

// The learning-rate finder: an exponential ramp, fastai's smoothed loss, the steepest descent as the
// suggestion, a stop on divergence, and its two files.
TEST(Recipe, TheLearningRateFinderSweepsSuggestsAndWritesItsCurve) {
  auto [train_set, val_set] = three_class_sets();
  auto c = small_mlp(1);
  train::Trainer t(c, train_set, val_set, kMean, kStd);
  train::LrFindOptions f;
  f.start_lr = 1e-4;
  f.end_lr = 1;
  f.steps = 30;
  const auto r = t.find_lr(f);
  ASSERT_FALSE(r.lrs.empty());
  EXPECT_DOUBLE_EQ(r.lrs.front(), 1e-4);
  for (size_t i = 1; i < r.lrs.size(); ++i) EXPECT_NEAR(r.lrs[i] / r.lrs[i - 1], std::pow(1e4, 1.0 / 29), 1e-9);
  if (!r.diverged) {
    EXPECT_NEAR(r.lrs.back(), 1.0, 1e-9);
  }
  // The smoothed loss is fastai's debiased moving average of the losses.
  double avg = 0;
  for (size_t i = 0; i < r.losses.size(); ++i) {
    avg = 0.98 * avg + 0.02 * r.losses[i];
    EXPECT_NEAR(r.smoothed[i], avg / (1 - std::pow(0.98, static_cast<double>(i + 1))), 1e-9) << i;
  }
  // The suggestion is where the smoothed loss falls fastest against log(lr).
  size_t best = 0;
  double steepest = 1e300;
  for (size_t i = 0; i + 1 < r.smoothed.size(); ++i) {
    const double slope = (r.smoothed[i + 1] - r.smoothed[i]) / std::log(r.lrs[i + 1] / r.lrs[i]);
    if (slope < steepest) {
      steepest = slope;
      best = i;
    }
  }
  EXPECT_DOUBLE_EQ(r.suggestion, r.lrs[best]);
  fixtures::TempDir tmp;
  train::write_lr_find(tmp / "f", r);
  const auto csv = fixtures::read_file(tmp / "f/lr_find.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(r.lrs.size() + 1));
  EXPECT_NE(fixtures::read_file(tmp / "f/lr_find.svg").find("<svg"), std::string::npos);

  // A ramp to an absurd rate diverges and stops before its last step.
  train::Trainer u(c, train_set, val_set, kMean, kStd);
  f.end_lr = 1e8;
  f.steps = 200;
  const auto d = u.find_lr(f);
  EXPECT_TRUE(d.diverged);
  EXPECT_LT(d.lrs.size(), 200u);
  EXPECT_LT(d.suggestion, 1e8);
  fixtures::expect_error([&] { train::LrFindOptions bad; bad.end_lr = 1e-9; u.find_lr(bad); }, {"end_lr"});
}

// --recipe modern sets its settings except those the caller gave; book changes nothing.
TEST(Recipe, TheModernRecipeSetsWhatWasNotGiven) {
  train::TrainingSpec t;
  t.epochs = 30;
  t.optimizer.lr = 0.2;
  train::apply_recipe(t, "modern", [](const std::string& setting) { return setting == "lr"; });
  EXPECT_EQ(t.optimizer.lr, 0.2);  // given: kept
  EXPECT_EQ(t.optimizer.momentum, 0.9);
  EXPECT_TRUE(t.optimizer.nesterov);
  EXPECT_TRUE(t.optimizer.no_decay_bias_norm);
  EXPECT_EQ(t.schedule.kind, train::ScheduleKind::kCosine);
  EXPECT_EQ(t.schedule.warmup, 3);
  EXPECT_EQ(t.label_smoothing, 0.1);
  EXPECT_EQ(t.mix.mixup_alpha, 0.2);
  EXPECT_EQ(t.ema_decay, 0.999);
  EXPECT_EQ(t.tta, train::Tta::kFlip);
  t.validate();
  train::TrainingSpec book;
  const auto before = book.to_json();
  train::apply_recipe(book, "book", [](const std::string&) { return false; });
  EXPECT_EQ(book.to_json(), before);
  fixtures::expect_error([&] { train::apply_recipe(book, "fancy", [](const std::string&) { return false; }); },
                         {"recipe", "fancy", "modern"});
}

// What a checkpoint says about the trainer (best validation, the weight average's count, the plateau
// state) is read as a file's values: damage is an Error naming the checkpoint, at resume or before the
// first epoch.
TEST(Recipe, ADamagedTrainerStateNamesTheCheckpoint) {
  auto [train_set, val_set] = three_class_sets();
  fixtures::TempDir tmp;
  auto c = small_mlp(3);
  c.training.ema_decay = 0.5;
  c.training.schedule.kind = train::ScheduleKind::kPlateau;
  {
    train::Trainer t(c, train_set, val_set, kMean, kStd);
    auto dir = train::RunDir::create(tmp / "r");
    dir.write_config(t.run_record());
    t.run(dir);
  }
  const std::string ckpt = tmp / "r/checkpoint.pt";
  const auto saved = train::load_checkpoint(ckpt);
  ASSERT_TRUE(saved.averaged);
  const auto good = saved.trainer_state;
  auto damaged = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto state = good;
    edit(state);
    auto optimizer = train::make_optimizer(c.training.optimizer, saved.model->parameters());
    train::save_checkpoint(ckpt, saved.config, *saved.model, optimizer.get(), saved.epoch, saved.run_config, state,
                           saved.averaged.get());
    train::Trainer t(c, train_set, val_set, kMean, kStd);
    auto dir = train::RunDir::open(tmp / "r");
    t.resume_from(dir);
    t.run(dir);
  };
  EXPECT_EQ(fixtures::message_of([&] { damaged([](nlohmann::json&) {}); }), "(no error)");  // as saved: resumes
  const std::vector<std::function<void(nlohmann::json&)>> edits = {
      [](nlohmann::json& s) { s["best"]["epoch"] = -3; },
      [](nlohmann::json& s) { s["best"]["epoch"] = 99; },
      [](nlohmann::json& s) { s["best"] = 5; },
      [](nlohmann::json& s) { s["best"]["value"] = "low"; },
      [](nlohmann::json& s) { s["averaged"] = "x"; },
      [](nlohmann::json& s) { s["averaged"] = -1; },
      [](nlohmann::json& s) { s.erase("averaged"); },
      [](nlohmann::json& s) { s["schedule"]["bad_epochs"] = 1.5; },
      [](nlohmann::json& s) { s["schedule"]["reductions"] = -2; },
      [](nlohmann::json& s) { s = nlohmann::json::array({1}); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    const auto message = fixtures::message_of([&] { damaged(edits[i]); });
    EXPECT_NE(message.find(ckpt), std::string::npos) << "edit " << i << ": " << message;
    EXPECT_NE(message.find("damaged"), std::string::npos) << "edit " << i << ": " << message;
  }
}
