#include "birdplane/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "birdplane/nn/backbones.h"
#include "birdplane/data/batch_loader.h"
#include "birdplane/doctor.h"
#include "birdplane/transforms/batch.h"
#include "birdplane/transforms/spec.h"
#include "birdplane/train/distributed.h"
#include "birdplane/version.h"
#include "train/model_state.h"

namespace birdplane::train {
namespace {

// derive_seed's stream for the model's own randomness (the loader uses 1 and 2).
constexpr uint64_t kModelStream = 3;
// ... and for mixup and cutmix draws, per batch.
constexpr uint64_t kMixStream = 4;

}  // namespace

Trainer::Trainer(RunSpec spec, const data::ImageSet& train_set, const data::ImageSet& val_set,
                 std::vector<double> mean, std::vector<double> std, nn::ClassifierPtr model, Distributed* dist,
                 bool resuming)
    : spec_(std::move(spec)), train_set_(train_set), val_set_(val_set),
      device_(resolve_device(spec_.training.device)), dist_(dist) {
  spec_.training.validate();  // the model's name is checked by make_model (a SettingError for "model")
  const TrainingSpec& t = spec_.training;
  BIRDPLANE_CHECK(train_set.class_names() == val_set.class_names(),
                  "the training and validation sets have different classes ({} and {})",
                  fmt::join(train_set.class_names(), ","), fmt::join(val_set.class_names(), ","));
  BIRDPLANE_CHECK(train_set.image_shape() == val_set.image_shape(),
                  "the training and validation images differ in shape");
  const auto channels = train_set.image_shape()[0];
  if (!t.augment.empty()) {
    // The augmentation once on two blank images of the run's size: one that changes their size or
    // dtype fails here, before a run folder exists, not on the loader thread.
    std::vector<int64_t> probe = {2};
    for (const auto d : train_set.image_shape()) probe.push_back(d);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    transforms::parse_augment(t.augment)(at::zeros(probe, at::kByte), gen);
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(mean.size()) == channels && static_cast<int64_t>(std.size()) == channels,
                  "normalization needs one mean and one std per channel ({}), got {} and {}", channels, mean.size(),
                  std.size());

  // Pretrained weights come with their own normalization (ImageNet's mean and std for torchvision's).
  const bool pretrained_backbone = !t.weights.empty() && nn::is_backbone(spec_.model.name);
  if (pretrained_backbone) {
    const auto p = nn::weights_preprocessing(spec_.model.name, t.weights);
    BIRDPLANE_CHECK_SETTING(channels == 3, "weights", "{} was trained on RGB images; these have {} channels",
                            t.weights, channels);
    mean = p.mean;
    std = p.std;
    // The weights' resize-then-crop margin (256 for 224), kept for this run's image size.
    const auto height = train_set.image_shape()[1];
    model_config_.resize = static_cast<int64_t>(std::lround(static_cast<double>(p.resize * height) / p.crop));
    model_config_.interpolation = p.interpolation;
  }

  torch::manual_seed(t.seed);  // the initial weights follow the seed, as in the book
  if (model) {
    model_ = std::move(model);
    BIRDPLANE_CHECK(model_->spec().num_classes == train_set.num_classes(),
                    "the model has {} outputs for {} classes", model_->spec().num_classes, train_set.num_classes());
  } else {
    spec_.model.num_classes = train_set.num_classes();
    spec_.model.image_shape = train_set.image_shape();
    model_ = nn::make_model(spec_.model);
  }
  model_config_.spec = model_->spec();
  spec_.model = model_->spec();
  model_config_.loss = t.loss ? *t.loss : nn::natural_loss(*model_);
  nn::check_loss_fits(model_config_.loss, model_->ends_in_log_softmax());
  model_config_.classes = train_set.class_names();
  model_config_.mean = std::move(mean);
  model_config_.std = std::move(std);
  model_config_.crop = spec_.data.crop;
  model_config_.tta = t.tta;

  if (!t.init_from.empty() && !resuming) import_state_dict(t.init_from, *model_);
  if (!t.weights.empty() && !resuming) {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& p : model_->named_parameters()) named.emplace_back(p.key(), p.value());
    const std::string head =
        nn::is_backbone(model_->spec().name) ? nn::backbone_head(model_->spec().name) : head_module(named);
    pretrained_ = load_pretrained(t.weights, *model_, head);
  }
  if (!t.freeze.empty() || t.fine_tune.head_epochs > 0) {
    auto* backbone = dynamic_cast<nn::Backbone*>(model_.get());
    BIRDPLANE_CHECK_SETTING(backbone, t.freeze.empty() ? "fine_tune" : "freeze",
                            "{} is not one of torchvision's networks ({}); only those have stages to freeze",
                            model_->spec().name, fmt::join(nn::backbone_names(), ", "));
    BIRDPLANE_CHECK_SETTING(!dist_ || dist_->world_size() == 1, t.freeze.empty() ? "fine_tune" : "freeze",
                            "frozen layers are not supported with several processes yet");
    backbone->freeze(t.freeze);  // a stage it does not have is a SettingError before anything is written
  }
  model_->to(device_);
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& p : model_->named_parameters()) named.emplace_back(p.key(), p.value());
  const auto groups = parameter_groups(t.optimizer, named);
  for (const auto& g : groups) base_lrs_.push_back(g.lr);
  optimizer_ = make_optimizer(t.optimizer, groups);

  if (dist_) {
    // Every rank starts from rank 0's weights (and buffers), as DistributedDataParallel's constructor does.
    torch::NoGradGuard no_grad;
    auto state = model_tensors(*model_);
    dist_->broadcast(state);
    reducer_ = dist_->make_reducer(model_->parameters());
  }
  StepSetup setup;
  setup.loss = model_config_.loss;
  setup.loss_options.label_smoothing = t.label_smoothing;
  if (!t.class_weights.empty()) {
    const auto counts = torch::bincount(train_set.labels().to(torch::kInt64), {}, train_set.num_classes());
    std::vector<int64_t> per_class(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
    const auto w = resolve_class_weights(t.class_weights, per_class);
    setup.loss_options.class_weights = torch::tensor(w, torch::kDouble).to(torch::kFloat);
  }
  setup.clip_grad_norm = t.clip_grad_norm;
  setup.clip_grad_value = t.clip_grad_value;
  setup.soft_targets = t.mix.enabled();
  setup.optimizer = t.optimizer;
  setup.device = device_;
  setup.precision = t.precision;
  step_ = make_step(*model_, setup, t.step, *optimizer_, reducer_.get(), step_note_);
  if (t.ema_decay > 0) {
    averaged_model_ = nn::make_model(model_->spec());
    averaged_model_->to(device_);
    averaged_model_->eval();
    load_model_tensors(*averaged_model_, model_tensors(*model_));  // AveragedModel's deepcopy
    for (auto& p : averaged_model_->parameters()) p.set_requires_grad(false);
    average_ = std::make_unique<WeightAverage>(model_tensors(*averaged_model_), t.ema_decay);
  }
}

double Trainer::fine_tune_phase(int64_t epoch) {
  const TrainingSpec& t = spec_.training;
  auto* backbone = dynamic_cast<nn::Backbone*>(model_.get());
  if (!backbone || t.fine_tune.head_epochs == 0) return 1.0;
  const bool head_only = epoch < t.fine_tune.head_epochs;
  const std::string frozen = head_only ? "backbone" : t.freeze;
  if (backbone->frozen() != frozen) backbone->freeze(frozen);
  return head_only ? 1.0 : t.fine_tune.lr_factor;
}

nlohmann::json Trainer::run_record() const {
  const auto environment = inspect_environment();
  return {{"run", spec_.to_json()},
          {"model", model_config_.to_json()},
          {"parameters", nn::count_parameters(*model_)},
          {"train_images", static_cast<int64_t>(*train_set_.size())},
          {"val_images", static_cast<int64_t>(*val_set_.size())},
          {"train_source", train_set_.source()},
          {"versions", {{"birdplane", version()}, {"libtorch", TORCH_VERSION}}},
          {"threads", at::get_num_threads()},
          {"step_used", fused() ? "fused" : "autograd"},
          {"step_note", step_note_},
          {"pretrained", spec_.training.weights.empty()
                             ? nlohmann::json()
                             : nlohmann::json{{"file", spec_.training.weights},
                                              {"tensors", pretrained_.tensors},
                                              {"head_replaced", pretrained_.head_replaced},
                                              {"file_classes", pretrained_.file_classes}}},
          {"world_size", dist_ ? dist_->world_size() : 1},
          {"distributed", dist_ ? nlohmann::json{{"backend", dist_->backend()},
                                                 {"world_size", dist_->world_size()},
                                                 {"gradient_buckets_bytes", reducer_->bucket_bytes()},
                                                 {"timeout_seconds", dist_->options().timeout.count() / 1000.0}}
                                : nlohmann::json()},
          // the fused fp32 step's input layer (an MLP's first product, a convnet's convolutions): birdplane's
          // AVX-512 kernels, or ATen and the BLAS
          {"input_layer_kernels", input_layer_kernels() ? "birdplane-avx512" : "aten"},
          {"blas", {{"path", environment.blas_path}, {"core", environment.blas_core}}}};
}

Trainer::~Trainer() = default;

EvalResult Trainer::evaluate_everywhere(nn::Classifier& model, const data::ImageSet& set) {
  if (!dist_ || dist_->world_size() == 1) return evaluate(model, set, model_config_, device_, 1000, spec_.training.precision);
  // Rank r takes images [n*r/W, n*(r+1)/W); loss sums, counts and confusion counts are then summed.
  const int64_t n = static_cast<int64_t>(*set.size()), w = dist_->world_size(), r = dist_->rank();
  const int64_t begin = n * r / w, end = n * (r + 1) / w;
  const int64_t k = model_->spec().num_classes;
  EvalResult mine;
  mine.confusion = ConfusionMatrix(k);
  if (end > begin) {
    data::ImageSet part(set.images().slice(0, begin, end), set.labels().slice(0, begin, end), set.class_names(),
                        set.source());
    mine = evaluate(model, part, model_config_, device_, 1000, spec_.training.precision);
  }
  auto sums = torch::zeros({2 + k * k}, torch::kDouble);
  auto* p = sums.data_ptr<double>();
  p[0] = mine.loss * static_cast<double>(end - begin);
  p[1] = static_cast<double>(end - begin);
  for (int64_t i = 0; i < k * k; ++i) p[2 + i] = static_cast<double>(mine.confusion.counts()[i]);
  std::vector<at::Tensor> t{sums};
  dist_->all_reduce_sum(t);
  EvalResult all;
  all.loss = p[1] > 0 ? p[0] / p[1] : 0.0;
  all.confusion = ConfusionMatrix(k);
  std::vector<int64_t> counts(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k * k; ++i) counts[i] = std::llround(p[2 + i]);
  all.confusion.add_counts(counts);
  return all;
}

std::string Trainer::last_checkpoint_text(int64_t epochs_done) const {
  if (epochs_done == 0) return "no checkpoint yet (no epoch finished)";
  return fmt::format("the last checkpoint is {} (epoch {})",
                     (std::filesystem::path(spec_.path()) / "checkpoint.pt").string(), epochs_done);
}

std::unique_ptr<data::BatchLoader> Trainer::make_loader() const {
  const TrainingSpec& t = spec_.training;
  // The next batch is prepared on a thread of its own only where a core is free for it. When the
  // intra-op threads already take every core, a loader thread can only run by taking a core from a
  // matrix product (which then waits at its barrier); on the training thread the same work runs
  // between steps, on all the intra-op threads. Batches are the same either way.
  const int64_t local_processes = dist_ ? std::max<int64_t>(1, dist_->local_world_size()) : 1;
  const bool spare_core =
      std::thread::hardware_concurrency() > static_cast<unsigned>(at::get_num_threads() * local_processes);
  auto options = data::BatchLoaderOptions(t.batch_size)
                     .seed(t.seed)
                     .drop_last(t.drop_last)
                     .background(spare_core)
                     .shard(dist_ ? dist_->rank() : 0, dist_ ? dist_->world_size() : 1);
  if (t.balanced_sampler)
    options.sample_weights(data::class_balanced_weights(train_set_.labels(), train_set_.num_classes()));
  return std::make_unique<data::BatchLoader>(
      train_set_, options,
      t.augment.empty() ? transforms::normalize_batches(model_config_.mean, model_config_.std)
                        : transforms::augment_then_normalize(t.augment, model_config_.mean, model_config_.std));
}

at::Tensor Trainer::targets_of(at::Tensor& x, const at::Tensor& labels, int64_t epoch, int64_t batch) const {
  const TrainingSpec& t = spec_.training;
  if (!t.mix.enabled()) return labels;
  // Drawn per batch (and rank), so a resumed run mixes as an uninterrupted one did.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(data::derive_seed(
      data::derive_seed(t.seed + static_cast<uint64_t>(dist_ ? dist_->rank() : 0), epoch, kMixStream), batch, 0));
  return mix_batch(x, labels, train_set_.num_classes(), t.mix, gen).targets;
}

LrFindResult Trainer::find_lr(const LrFindOptions& options, TrainObserver* observer) {
  BIRDPLANE_CHECK_SETTING(std::isfinite(options.start_lr) && options.start_lr > 0, "start_lr",
                          "{} is not allowed; expected a rate above 0", options.start_lr);
  BIRDPLANE_CHECK_SETTING(std::isfinite(options.end_lr) && options.end_lr > options.start_lr, "end_lr",
                          "{} is not allowed; expected a rate above the start ({})", options.end_lr, options.start_lr);
  BIRDPLANE_CHECK_SETTING(options.steps >= 5 && options.steps <= 100000, "steps",
                          "{} is not allowed; expected 5 to 100000 steps", options.steps);
  BIRDPLANE_CHECK(!dist_, "the learning-rate finder runs in one process");
  TrainObserver quiet;
  TrainObserver& obs = observer ? *observer : quiet;
  auto loader = make_loader();
  LrFindResult r;
  const double ratio = options.end_lr / options.start_lr;
  double average = 0, best = std::numeric_limits<double>::infinity();
  Timer timer;
  model_->train();
  std::vector<double> rates(base_lrs_.size());
  for (int64_t epoch = 0, i = 0; i < options.steps; ++epoch) {
    loader->start_epoch(epoch);
    torch::manual_seed(data::derive_seed(spec_.training.seed, epoch, kModelStream));
    while (auto batch = loader->next()) {
      if (i >= options.steps) break;
      // Exponential from start_lr to end_lr; every group keeps its ratio to the first (head multiplier).
      const double lr = options.start_lr * std::pow(ratio, static_cast<double>(i) / static_cast<double>(options.steps - 1));
      for (size_t g = 0; g < rates.size(); ++g) rates[g] = lr * base_lrs_[g] / base_lrs_[0];
      step_->set_lrs(rates);
      auto x = batch->images.to(device_);
      auto y = targets_of(x, batch->labels.to(device_), epoch, batch->index);
      const StepResult s = step_->run(x, y, false);
      ++i;
      // fastai's recorder: an exponential moving average of the loss, corrected for its start.
      average = options.smoothing * average + (1 - options.smoothing) * s.loss;
      const double smoothed = average / (1 - std::pow(options.smoothing, static_cast<double>(i)));
      r.lrs.push_back(lr);
      r.losses.push_back(s.loss);
      r.smoothed.push_back(smoothed);
      StepProgress progress;
      progress.epoch = 0;
      progress.epochs = 1;
      progress.step = i - 1;
      progress.steps = options.steps;
      progress.mean_loss = smoothed;
      progress.images = i * spec_.training.batch_size;
      progress.epoch_seconds = progress.seconds = timer.seconds();
      obs.on_step(progress);
      if (!std::isfinite(smoothed) || smoothed > options.diverge * best) {
        r.diverged = true;
        i = options.steps;
        break;
      }
      best = std::min(best, smoothed);
    }
  }
  // The steepest descent of the smoothed loss against log(lr) (fastai's "steep" suggestion), over the
  // points before any divergence.
  size_t end = r.smoothed.size();
  while (end > 0 && !std::isfinite(r.smoothed[end - 1])) --end;
  double steepest = std::numeric_limits<double>::infinity();
  r.suggestion = r.lrs.empty() ? 0 : r.lrs.front();
  for (size_t k = 0; k + 1 < end; ++k) {
    const double slope = (r.smoothed[k + 1] - r.smoothed[k]) / (std::log(r.lrs[k + 1]) - std::log(r.lrs[k]));
    if (slope < steepest) {
      steepest = slope;
      r.suggestion = r.lrs[k];
    }
  }
  return r;
}

std::vector<at::Tensor> Trainer::state_of(const nn::Classifier& model) {
  std::vector<at::Tensor> state;
  for (const auto& t : model_tensors(model)) state.push_back(t.detach().clone());
  return state;
}

nlohmann::json Trainer::trainer_state(const nlohmann::json& schedule_state) const {
  return {{"schedule", schedule_state},
          {"best", {{"value", best_value_ ? nlohmann::json(*best_value_) : nlohmann::json()},
                    {"epoch", best_epoch_},
                    {"bad_validations", bad_validations_}}},
          {"stopped_early", stopped_early_},
          {"averaged", average_ ? average_->n_averaged() : 0}};
}

bool Trainer::watch_validation(const EpochMetrics& m, const RunDir* dir) {
  const TrainingSpec& t = spec_.training;
  const bool loss = t.monitor == Monitor::kValLoss;
  const double v = loss ? m.val_loss : m.val_accuracy;
  // Better by more than min_delta; a NaN loss is never better.
  const bool improved =
      std::isfinite(v) && (!best_value_ || (loss ? v < *best_value_ - t.min_delta : v > *best_value_ + t.min_delta));
  if (improved) {
    best_value_ = v;
    best_epoch_ = m.epoch;
    bad_validations_ = 0;
    if (dir) save_checkpoint(dir->best_path(), model_config_, model_in_use());
    if (t.final_best) best_state_ = state_of(model_in_use());
    return false;
  }
  ++bad_validations_;
  return t.early_stopping > 0 && bad_validations_ >= t.early_stopping;
}

TrainResult Trainer::run(const RunDir& dir, TrainObserver* observer, StopToken stop) {
  return run(&dir, observer, stop);
}

TrainResult Trainer::run(const RunDir* dir, TrainObserver* observer, StopToken stop) {
  const bool main = !dist_ || dist_->is_main();
  BIRDPLANE_CHECK(dir || !main, "Trainer::run: {} needs the run folder", dist_ ? "rank 0" : "a run");
  TrainObserver quiet;
  TrainObserver& obs = observer ? *observer : quiet;
  const std::string ckpt = dir ? dir->checkpoint_path() : "";
  const std::string run_path = dir ? dir->path() : spec_.path();
  const TrainingSpec& t = spec_.training;
  auto loader_ptr = make_loader();
  data::BatchLoader& loader = *loader_ptr;
  const int64_t steps = loader.batches_per_epoch();
  LrSchedule schedule(t.schedule, t.epochs, steps);
  try {
    schedule.load_state(schedule_state_);  // from the checkpoint on resume
  } catch (const nlohmann::json::exception& e) {
    fail("{} is damaged (its learning-rate schedule state: {})", ckpt.empty() ? "the checkpoint" : ckpt, e.what());
  } catch (const Error& e) {
    fail("{} is damaged ({})", ckpt.empty() ? "the checkpoint" : ckpt, e.what());
  }
  std::vector<double> rates = base_lrs_, applied;
  Timer run_timer;
  model_->train();
  int64_t epoch = start_epoch_;
  try {
    for (; epoch < t.epochs && !stopped_early_; ++epoch) {
      const double phase = fine_tune_phase(epoch);
      Timer timer;
      MeanMeter loss_meter;
      int64_t correct = 0, seen = 0;
      loader.start_epoch(epoch);
      // The model's own random draws (dropout) come from LibTorch's default generator, seeded per epoch
      // so that a resumed run draws what an uninterrupted one would (and per rank in distributed runs).
      torch::manual_seed(data::derive_seed(t.seed + static_cast<uint64_t>(dist_ ? dist_->rank() : 0), epoch,
                                           kModelStream));
      while (auto batch = loader.next()) {
        for (size_t g = 0; g < rates.size(); ++g) rates[g] = phase * schedule.rate(base_lrs_[g], epoch, batch->index);
        if (rates != applied) {
          step_->set_lrs(rates);
          applied = rates;
        }
        auto x = batch->images.to(device_);
        auto y = targets_of(x, batch->labels.to(device_), epoch, batch->index);
        const StepResult r = step_->run(x, y, stop.stop_requested());
        if (r.stopped) {
          throw Interrupted(fmt::format("interrupted during epoch {}; {}", epoch + 1, last_checkpoint_text(epoch)),
                            run_path, epoch);
        }
        const double loss_value = r.loss;
        const int64_t b = r.images;
        correct += r.correct;
        if (!std::isfinite(loss_value)) {
          fail_setting("lr",
                       "the training loss became {} at epoch {}, batch {}; stopped without saving this epoch. {} "
                       "holds the last good state (epoch {}). Try a lower learning rate (now {})",
                       loss_value, epoch + 1, batch->index + 1, ckpt.empty() ? "The run folder's checkpoint.pt" : ckpt,
                       epoch, rates[0]);
        }
        loss_meter.add(loss_value, b);
        seen += b;
        if (average_ && batch->index % t.ema_every == 0) {
          average_->update(model_tensors(*model_));
          if (epoch < t.ema_warmup) average_->restart();  // torchvision's reference: no average yet
        }
        StepProgress progress;
        progress.epoch = epoch;
        progress.epochs = t.epochs;
        progress.start_epoch = start_epoch_;
        progress.step = batch->index;
        progress.steps = steps;
        progress.mean_loss = loss_meter.mean();
        progress.images = seen;
        progress.epoch_seconds = timer.seconds();
        progress.seconds = run_timer.seconds();
        obs.on_step(progress);
      }
      EpochMetrics m;
      m.epoch = epoch + 1;
      m.train_loss = loss_meter.mean();
      m.train_accuracy = seen ? static_cast<double>(correct) / seen : 0.0;
      m.seconds = timer.seconds();
      m.images_per_second = seen / std::max(m.seconds, 1e-9);
      m.lr = applied.empty() ? base_lrs_[0] : applied[0];
      if ((epoch + 1) % t.eval_every == 0 || epoch + 1 == t.epochs) {
        auto ev = evaluate_everywhere(model_in_use(), val_set_);
        m.val_loss = ev.loss;
        m.val_accuracy = ev.confusion.accuracy();
        // Reduce-on-plateau watches each validation (every rank sees the same summed figures).
        schedule.observe(schedule.watches_accuracy() ? m.val_accuracy : m.val_loss);
      }
      history_.push_back(m);
      if (main) write_metrics(dir->metrics_path(), history_);
      // Metrics first: a kill between the writes leaves a row the checkpoint does not reach yet, which
      // resume_from drops. The other order left the checkpoint one epoch ahead of metrics.csv, and the
      // resumed run then wrote its next row after a gap (found by the kill -9 test). best.pt comes before
      // the checkpoint too: a resume from the older checkpoint redoes the epoch and writes it again.
      if (m.val_loss >= 0) stopped_early_ = watch_validation(m, main ? dir : nullptr);
      if (main) {
        save_checkpoint(ckpt, model_config_, *model_, optimizer_.get(), epoch + 1, spec_.to_json(),
                        trainer_state(schedule.state()), averaged_model_.get());
      }
      obs.on_epoch(m, t.epochs);
    }
  } catch (const DistributedError& e) {
    throw DistributedError(fmt::format("{}; {}", e.what(), last_checkpoint_text(epoch)), e.lost_rank());
  }
  TrainResult result;
  result.history = history_;
  result.run_dir = run_path;
  result.total_seconds = run_timer.seconds();
  // model.pt from best.pt's weights when asked (every rank takes rank 0's copy: after a resume only rank
  // 0 has read it back).
  const bool from_best = t.final_best && best_epoch_ > 0;
  if (from_best) {
    if (dist_) {
      if (!main) best_state_ = state_of(*model_);
      dist_->broadcast(best_state_);
    }
    load_model_tensors(*model_, best_state_);
  } else if (averaged_model_) {
    // The run's model is the weight average: the final figures and model.pt are the average's.
    load_model_tensors(*model_, model_tensors(*averaged_model_));
  }
  const int64_t model_epoch = from_best ? best_epoch_ : static_cast<int64_t>(history_.size());
  result.stopped_early = stopped_early_;
  result.model_epoch = model_epoch;
  result.model_from_best = from_best;
  auto train_eval = evaluate_everywhere(*model_, train_set_);
  auto val_eval = evaluate_everywhere(*model_, val_set_);
  result.final_train_accuracy = train_eval.confusion.accuracy();
  result.final_val_accuracy = val_eval.confusion.accuracy();
  result.final_train_loss = train_eval.loss;
  result.final_val_loss = val_eval.loss;
  if (main) {
    save_checkpoint(dir->model_path(), model_config_, *model_);
    dir->write_json("results.json", {{"train_accuracy", result.final_train_accuracy},
                                     {"train_loss", train_eval.loss},
                                     {"val_accuracy", result.final_val_accuracy},
                                     {"val_loss", val_eval.loss},
                                     {"epochs", t.epochs},
                                     {"epochs_trained", static_cast<int64_t>(history_.size())},
                                     {"stopped_early", stopped_early_},
                                     // which weights model.pt holds, and the best validation
                                     {"model_epoch", model_epoch},
                                     {"model_from", from_best ? "best" : "last"},
                                     {"best", {{"monitor", to_string(t.monitor)},
                                               {"epoch", best_epoch_},
                                               {"value", best_value_ ? nlohmann::json(*best_value_)
                                                                     : nlohmann::json()}}},
                                     {"seconds_this_session", result.total_seconds},
                                     {"world_size", dist_ ? dist_->world_size() : 1},
                                     // rank 0's time waiting for gradient all-reduces after backward
                                     // (the communication the overlap did not hide), this session
                                     {"gradient_wait_seconds", reducer_ ? reducer_->wait_seconds() : 0.0},
                                     {"validation", val_eval.confusion.to_json(model_config_.classes)}});
  }
  // Every rank ends when rank 0's files are on disk (or learns that writing them failed).
  if (dist_) dist_->barrier();
  obs.on_end(result);
  return result;
}

}  // namespace birdplane::train
