// The training loop: epochs over a BatchLoader, one Step per batch, metrics per epoch, checkpoints
// into a RunDir, resume. The library never prints: progress reaches the caller through a
// TrainObserver, and a StopToken asks a run to stop after the current step. Most programs start and
// resume runs through train::Run (train/run.h), which also reads the data and owns the run folder.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <c10/core/Device.h>

#include "birdplane/check.h"
#include "birdplane/data/image_set.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/average.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/evaluate.h"
#include "birdplane/train/lr_find.h"
#include "birdplane/train/metrics_csv.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/run_spec.h"
#include "birdplane/train/settings.h"
#include "birdplane/train/step.h"

namespace birdplane::data {
class BatchLoader;
}

namespace birdplane::train {

/// Thrown when a run stopped because its StopToken asked it to (Ctrl-C on the command line). The last
/// finished epoch is in the run folder's checkpoint.
class Interrupted : public Error {
 public:
  Interrupted(const std::string& what, std::string run_dir, int64_t epochs_done)
      : Error(what), run_dir_(std::move(run_dir)), epochs_done_(epochs_done) {}
  const std::string& run_dir() const { return run_dir_; }
  int64_t epochs_done() const { return epochs_done_; }

 private:
  std::string run_dir_;
  int64_t epochs_done_;
};

/// Asks a run to stop after its current step. Reads a flag the caller owns (a signal handler may set
/// it: it is a lock-free atomic). A default StopToken never stops.
class StopToken {
 public:
  StopToken() = default;
  explicit StopToken(const std::atomic<bool>* flag) : flag_(flag) {}
  bool stop_requested() const { return flag_ && flag_->load(std::memory_order_relaxed); }

 private:
  const std::atomic<bool>* flag_ = nullptr;
};

/// The end of a run.
struct TrainResult {
  std::vector<EpochMetrics> history;
  double final_train_accuracy = 0;  ///< the book's figure: the finished model on the training set
  double final_val_accuracy = 0;
  double final_train_loss = 0, final_val_loss = 0;
  double total_seconds = 0;         ///< this session's training time
  std::string run_dir;
  bool stopped_early = false;       ///< early stopping ended the run before its last epoch
  int64_t model_epoch = 0;          ///< the epoch whose weights model.pt holds (the best one, or the last)
  bool model_from_best = false;     ///< model.pt holds best.pt's weights
};

/// Where a run is, for progress displays.
struct StepProgress {
  int64_t epoch = 0;        ///< 0-based
  int64_t epochs = 0;       ///< in the whole run
  int64_t start_epoch = 0;  ///< the epoch this session started at (resumed runs start later)
  int64_t step = 0;         ///< 0-based, within the epoch
  int64_t steps = 0;        ///< in one epoch
  double mean_loss = 0;     ///< over the epoch's steps so far
  int64_t images = 0;       ///< trained on so far this epoch
  double epoch_seconds = 0; ///< since this epoch began
  double seconds = 0;       ///< since this session's training began
};

/// What a training run reports while it runs. Every method has an empty default; they are called on
/// the thread that called Trainer::run.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// After each training step.
  virtual void on_step(const StepProgress& progress) {}
  /// After each epoch, once its checkpoint and metrics row are on disk.
  virtual void on_epoch(const EpochMetrics& metrics, int64_t epochs) {}
  /// After the final evaluation, once model.pt and results.json are written.
  virtual void on_end(const TrainResult& result) {}
};

class Distributed;
class GradientReducer;

/// Trains a classifier:
///   Trainer trainer(spec, train_set, val_set, mean, std);  // checks the settings, builds the model
///   auto dir = RunDir::create(spec.path()); dir.write_config(trainer.run_record());
///   trainer.run(dir, &observer, stop);
///
/// Distributed (train/distributed.h): every rank builds a Trainer with the same spec and data and
/// its Distributed; initial weights come from rank 0; each rank trains on its share of every epoch
/// (data::shard_order) with batch_size images per step, gradients averaged across ranks; validation
/// is split across ranks and summed; only rank 0 writes (the other ranks pass no RunDir).
/// Batch-norm running statistics stay per rank; rank 0's are saved.
class Trainer {
 public:
  /// Builds spec.model from the registry (its num_classes and image_shape taken from `train_set`), or
  /// takes `model`, a classifier of the caller's whose spec() names a registered preset so that its
  /// checkpoints reload; seeded with the training seed; and the optimizer and the step (train/step.h).
  /// Checks spec.training and the model name (SettingError naming the setting). `train_set` and
  /// `val_set` must outlive the trainer; mean and std normalize them. Nothing is written to disk.
  /// With `dist`, the trainer joins a multi-process run; `dist` must outlive it.
  /// `resuming`: resume_from follows, so the starting weights (init_from, weights) are not read.
  Trainer(RunSpec spec, const data::ImageSet& train_set, const data::ImageSet& val_set, std::vector<double> mean,
          std::vector<double> std, nn::ClassifierPtr model = nullptr, Distributed* dist = nullptr,
          bool resuming = false);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Continues the run in `dir`: model, optimizer and epoch from its checkpoint, history from its
  /// metrics.csv. A NoCheckpointError when it has none yet; an Error for one of another model.
  void resume_from(const RunDir& dir);
  /// Distributed: rank 0 passes its run folder, the other ranks nullptr; rank 0's checkpoint reaches
  /// them through the process group (no shared file system needed).
  void resume_from(const RunDir* dir);

  /// What config.json records: the run specification (model filled in), the model, the data sizes,
  /// versions, threads, the step used and the BLAS.
  nlohmann::json run_record() const;
  /// What TrainingSpec::weights brought into the model (all zero without weights, and on resume).
  const PretrainedLoad& pretrained() const { return pretrained_; }

  /// Trains from the current epoch to the spec's epochs, writing checkpoint.pt and metrics.csv into
  /// `dir` after every epoch, then model.pt and results.json. Throws Interrupted when `stop` asks.
  TrainResult run(const RunDir& dir, TrainObserver* observer = nullptr, StopToken stop = {});
  /// Distributed: rank 0 passes its run folder, the other ranks nullptr (they write nothing). A stop
  /// asked on any rank stops every rank after the same step.
  TrainResult run(const RunDir* dir, TrainObserver* observer = nullptr, StopToken stop = {});

  /// The learning-rate finder: trains this trainer's model (a fresh one: build a Trainer for it) on the
  /// training batches with the rate rising exponentially, and records the loss. Writes nothing; the
  /// model and optimizer are changed, so the trainer is not meant to train a run afterwards.
  LrFindResult find_lr(const LrFindOptions& options, TrainObserver* observer = nullptr);

  /// Whether the steps run fused (TrainingSpec::step) rather than through autograd.
  bool fused() const { return step_->fused(); }
  /// Why the fused step stepped aside (a model without one, a setting it does not take, a distributed
  /// run), or "" (it runs, or autograd was asked for).
  const std::string& step_note() const { return step_note_; }
  /// Whether the fused step runs its input layer on birdplane's AVX-512 kernels.
  bool input_layer_kernels() const { return step_->own_kernels(); }
  /// The epoch the next run() starts at (0, or the checkpoint's after resume_from).
  int64_t start_epoch() const { return start_epoch_; }

  /// The specification, its model part filled in from the data.
  const RunSpec& spec() const { return spec_; }
  nn::Classifier& model() { return *model_; }
  const nn::Classifier& model() const { return *model_; }
  const ModelConfig& model_config() const { return model_config_; }

 private:
  /// evaluate() of `model` on this rank's slice of `set`, summed over the ranks (plain evaluate()
  /// without dist).
  EvalResult evaluate_everywhere(nn::Classifier& model, const data::ImageSet& set);
  // Fine-tuning's phase at `epoch` (TrainingSpec::fine_tune): freezes or unfreezes the backbone and
  // returns the factor on the learning rate.
  double fine_tune_phase(int64_t epoch);
  /// The model that validation, best.pt and model.pt use: the weight average when there is one.
  nn::Classifier& model_in_use() { return averaged_model_ ? *averaged_model_ : *model_; }
  /// "<runs_dir>/<name>/checkpoint.pt (epoch N)" for messages on any rank.
  std::string last_checkpoint_text(int64_t epochs_done) const;
  /// After a validation: updates the best figure, writes best.pt (rank 0) when it improved, and says
  /// whether early stopping ends the run here.
  bool watch_validation(const EpochMetrics& m, const RunDir* dir);
  /// What the checkpoint carries besides weights and optimizer: schedule, best figure, early stop.
  nlohmann::json trainer_state(const nlohmann::json& schedule_state) const;
  /// The training batches' loader (seeded, sharded across ranks, augmented and normalized).
  std::unique_ptr<data::BatchLoader> make_loader() const;
  /// The targets of a batch: its labels, or mixed targets when mixup or cutmix is on (x mixed in place).
  at::Tensor targets_of(at::Tensor& x, const at::Tensor& labels, int64_t epoch, int64_t batch) const;
  /// `model`'s parameters and buffers, in order (copies).
  static std::vector<at::Tensor> state_of(const nn::Classifier& model);

  RunSpec spec_;
  const data::ImageSet& train_set_;
  const data::ImageSet& val_set_;
  ModelConfig model_config_;
  c10::Device device_;
  nn::ClassifierPtr model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Step> step_;
  std::string step_note_;
  PretrainedLoad pretrained_;  ///< what TrainingSpec::weights brought
  Distributed* dist_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;  ///< set in multi-process runs
  std::vector<double> base_lrs_;              ///< each parameter group's rate before the schedule
  nlohmann::json schedule_state_ = nlohmann::json::object();  ///< from the checkpoint on resume
  // The best validation (TrainingSpec::monitor) and early stopping; saved in the checkpoint.
  std::optional<double> best_value_;
  int64_t best_epoch_ = 0;          ///< 1-based; 0: none yet
  int64_t bad_validations_ = 0;     ///< validations in a row without improvement
  bool stopped_early_ = false;
  std::vector<at::Tensor> best_state_;  ///< the best epoch's parameters and buffers (final_best only)
  // The weight average (ema_decay > 0): a second model whose tensors the average updates.
  nn::ClassifierPtr averaged_model_;
  std::unique_ptr<WeightAverage> average_;
  int64_t start_epoch_ = 0;
  std::vector<EpochMetrics> history_;
};

}  // namespace birdplane::train
