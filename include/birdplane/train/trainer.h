// The training loop: epochs over a BatchLoader, metrics per epoch, checkpoints into a RunDir, resume.
// The library never prints: progress reaches the caller through a TrainObserver, and a StopToken
// asks a run to stop after the current step.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "birdplane/check.h"
#include "birdplane/data/image_set.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/settings.h"

namespace birdplane::train {

/// Every setting of a training run; written to runs/<name>/config.json (key "train"). Setting names in
/// errors are these field names ("batch_size", "lr", ...).
struct TrainConfig {
  std::string data_dir;               ///< where the data came from, as given; recorded, not read here
  // An image folder instead of CIFAR-10 (all recorded; the caller reads the data, see data/image_folder.h).
  std::string image_folder;           ///< training images, one subfolder per class ("" : CIFAR-10)
  std::string val_folder;             ///< validation images in the same layout
  double val_fraction = 0;            ///< or this share of each class of image_folder (0: none)
  std::vector<int64_t> image_size;    ///< {height, width}; empty: the images' own
  data::CropMode crop = data::CropMode::kNone;
  int64_t max_pixels = data::kDefaultMaxPixels;
  bool skip_bad_images = false;
  std::string cache_dir;              ///< "" : beside the image folder
  std::vector<std::string> classes;   ///< recorded; the data passed in is already subset
  std::string model = "book-small";   ///< a preset of the model registry (nn::model_names())
  std::vector<int64_t> hidden;        ///< MLPs: overrides the preset's hidden widths when not empty
  nn::Activation activation = nn::Activation::kTanh;
  int64_t channels = 32;              ///< convnets from net-width on: first-layer channels
  int64_t blocks = 10;                ///< net-res-deep: residual blocks
  std::optional<nn::LossKind> loss;   ///< empty: the one that fits the model (nn::natural_loss)
  OptimizerConfig optimizer;
  int64_t epochs = 100;
  int64_t batch_size = 64;
  uint64_t seed = 123;
  bool drop_last = false;
  int64_t eval_every = 1;             ///< validation every N epochs (and after the last)
  std::string runs_dir = "runs";      ///< recorded: where the caller put the run folder
  std::string name;                   ///< recorded: the run folder's name
  DeviceKind device = DeviceKind::kAuto;
  std::string init_from;              ///< a state_dict file to start from
  int64_t limit_train = 0;            ///< recorded: the caller used only the first N training images (0: all)
  int64_t limit_val = 0;              ///< recorded: likewise for validation
  std::string augment;                ///< training augmentation spec (transforms/spec.h); empty: none
  Precision precision = Precision::kFp32;
  StepKind step = StepKind::kAuto;

  /// Throws a SettingError naming the setting when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  /// Reads what to_json wrote (also files from before --precision and --step existed).
  static TrainConfig from_json(const nlohmann::json& j);
};

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

/// While alive, with bf16 on, LibTorch's CPU autocast runs matmuls (linear, addmm, convolutions) in
/// bfloat16; weights stay float32 (cast per use, cached within the region). Restores the previous
/// autocast state on exit.
class PrecisionScope {
 public:
  explicit PrecisionScope(bool bf16);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  bool on_;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::BFloat16;
};

/// model.forward(x) in `precision`: with bf16 the logits are computed under PrecisionScope and widened
/// to float32 before any final log_softmax (LibTorch 1.13's CPU autocast leaves log_softmax in the
/// input's dtype) and the loss. Always returns float32.
at::Tensor forward_in_precision(nn::Classifier& model, const at::Tensor& x, Precision precision);

/// The device for a setting: kAuto takes CUDA when LibTorch has it; kCuda without CUDA is a
/// SettingError for "device".
c10::Device resolve_device(DeviceKind device);

/// Loss and confusion matrix of a model on a dataset (eval mode, no gradients).
struct EvalResult {
  double loss = 0;
  ConfusionMatrix confusion{1};
};

/// Evaluates `model` on every image of `set`, normalized with config.mean/std, in batches.
EvalResult evaluate(nn::Classifier& model, const data::ImageSet& set, const ModelConfig& config, c10::Device device,
                    int64_t batch_size = 1000, Precision precision = Precision::kFp32);

/// One row of metrics.csv.
struct EpochMetrics {
  int64_t epoch = 0;  ///< 1-based
  double train_loss = 0, train_accuracy = 0;  ///< running, over the epoch's training steps
  double val_loss = -1, val_accuracy = -1;    ///< -1 when not evaluated this epoch
  double seconds = 0, images_per_second = 0;
};

/// The end of a run.
struct TrainResult {
  std::vector<EpochMetrics> history;
  double final_train_accuracy = 0;  ///< the book's figure: the finished model on the training set
  double final_val_accuracy = 0;
  double final_train_loss = 0, final_val_loss = 0;
  double total_seconds = 0;         ///< this session's training time
  std::string run_dir;
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

class FusedStep;
class Distributed;
class GradientReducer;

/// Trains a classifier:
///   Trainer trainer(config, train_set, val_set, mean, std);  // checks every setting, builds the model
///   auto dir = RunDir::create("runs/x"); dir.write_config(trainer.run_record());
///   trainer.run(dir, &observer, stop);
///
/// Distributed (train/distributed.h): every rank builds a Trainer with the same config and data and
/// its Distributed; initial weights come from rank 0; each rank trains on its share of every epoch
/// (data::shard_order) with batch_size images per step, gradients averaged across ranks; validation
/// is split across ranks and summed; only rank 0 writes (the other ranks pass no RunDir).
/// Batch-norm running statistics stay per rank; rank 0's are saved.
class Trainer {
 public:
  /// Builds config.model from the registry (or takes `model`, a classifier of the caller's, whose
  /// spec() names a registered preset so that its checkpoints reload), seeded with config.seed, and
  /// the optimizer. `train_set` and `val_set` must outlive the trainer; mean and std normalize them.
  /// Nothing is written to disk.
  /// With `dist`, the trainer joins a multi-process run; `dist` must outlive it.
  Trainer(TrainConfig config, const data::ImageSet& train_set, const data::ImageSet& val_set,
          std::vector<double> mean, std::vector<double> std, nn::ClassifierPtr model = nullptr,
          Distributed* dist = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Continues the run in `dir`: model, optimizer and epoch from its checkpoint, history from its
  /// metrics.csv. An Error when it has no checkpoint or one of another model.
  void resume_from(const RunDir& dir);
  /// Distributed: rank 0 passes its run folder, the other ranks nullptr; rank 0's checkpoint reaches
  /// them through the process group (no shared file system needed).
  void resume_from(const RunDir* dir);

  /// What config.json records: the settings, the model, the data sizes, versions, threads, the step
  /// used and the BLAS.
  nlohmann::json run_record() const;

  /// Trains from the current epoch to config.epochs, writing checkpoint.pt and metrics.csv into `dir`
  /// after every epoch, then model.pt and results.json. Throws Interrupted when `stop` asks.
  TrainResult run(const RunDir& dir, TrainObserver* observer = nullptr, StopToken stop = {});
  /// Distributed: rank 0 passes its run folder, the other ranks nullptr (they write nothing). A stop
  /// asked on any rank stops every rank after the same step.
  TrainResult run(const RunDir* dir, TrainObserver* observer = nullptr, StopToken stop = {});

  /// Whether the steps run fused (TrainConfig::step) rather than through autograd.
  bool fused() const { return fused_ != nullptr; }
  /// Why the fused step stepped aside in a run it otherwise fits (a distributed run), or "".
  const std::string& step_note() const { return step_note_; }
  /// Whether the fused step runs its input layer on birdplane's AVX-512 kernels.
  bool input_layer_kernels() const;
  /// The epoch the next run() starts at (0, or the checkpoint's after resume_from).
  int64_t start_epoch() const { return start_epoch_; }

  const TrainConfig& config() const { return config_; }
  nn::Classifier& model() { return *model_; }
  const nn::Classifier& model() const { return *model_; }
  const ModelConfig& model_config() const { return model_config_; }

 private:
  void write_metrics(const std::string& path) const;
  /// evaluate() on this rank's slice of `set`, summed over the ranks (plain evaluate() without dist).
  EvalResult evaluate_everywhere(const data::ImageSet& set);
  /// "<runs_dir>/<name>/checkpoint.pt (epoch N)" for messages on any rank.
  std::string last_checkpoint_text(int64_t epochs_done) const;

  TrainConfig config_;
  const data::ImageSet& train_set_;
  const data::ImageSet& val_set_;
  ModelConfig model_config_;
  c10::Device device_;
  nn::ClassifierPtr model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<FusedStep> fused_;  ///< set when the steps run fused
  std::string step_note_;
  Distributed* dist_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;  ///< set in multi-process runs
  int64_t start_epoch_ = 0;
  std::vector<EpochMetrics> history_;
};

/// Reads metrics.csv rows written by a run (for resume and reports). A malformed row is an Error
/// naming the file and line.
std::vector<EpochMetrics> read_metrics(const std::string& path);

}  // namespace birdplane::train
