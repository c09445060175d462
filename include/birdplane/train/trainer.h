// The training loop: epochs over a BatchLoader, metrics per epoch, checkpoints, resume.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/sequential.h>
#include <c10/core/Device.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/nn/losses.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/optim.h"

namespace birdplane::train {

/// Every setting of a training run; written to runs/<name>/config.json.
struct TrainConfig {
  std::string data_dir;               ///< as given (--data-dir); empty: $BIRDPLANE_DATA, else ./data
  std::vector<std::string> classes;   ///< empty: all ten
  std::string model = "book-small";   ///< book-small, book-large or mlp
  std::vector<int64_t> hidden;        ///< overrides the preset's hidden widths when not empty
  std::string activation = "tanh";
  std::string loss;                   ///< empty: the one that fits the model
  OptimizerConfig optimizer;
  int64_t epochs = 100;
  int64_t batch_size = 64;
  uint64_t seed = 123;
  bool drop_last = false;
  int64_t eval_every = 1;             ///< validation every N epochs (and after the last)
  std::string runs_dir = "runs";
  std::string name;                   ///< run folder name; empty: a time stamp and the model
  std::string device = "auto";        ///< auto, cpu or cuda
  std::string init_from;              ///< a state_dict file to start from
  int64_t limit_train = 0;            ///< use only the first N training images (0: all)
  int64_t limit_val = 0;              ///< use only the first N validation images (0: all)
  std::string augment;                ///< training augmentation spec (transforms/spec.h); empty: none
  std::string precision = "fp32";     ///< fp32, or bf16: matmuls in bfloat16, fp32 weights and loss
  /// How a step computes gradients: "fused" (train/fused_step.h: no autograd, the update inside the
  /// weight-gradient product), "autograd" (backward() then optimizer.step()), or "auto": fused where it
  /// applies (CPU, plain SGD, nll or cross-entropy), autograd elsewhere.
  std::string step = "auto";

  /// Throws an Error naming the flag when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
};

/// Set from a SIGINT handler: the trainer stops after the current step, keeping the last
/// checkpoint, and throws Interrupted.
extern std::atomic<bool> g_interrupt_requested;

/// Thrown when the user interrupted a run (Ctrl-C).
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// Checks --precision: "fp32" or "bf16" (throws an Error naming the flag otherwise).
void check_precision(const std::string& precision);

/// While alive, with bf16 on, LibTorch's CPU autocast runs matmuls (linear, addmm) in bfloat16;
/// weights stay float32 (cast per use, cached within the region). LibTorch 1.13's CPU autocast leaves
/// log_softmax in the input's dtype, so forward_in_precision keeps it out of the region. Restores the
/// previous autocast state on exit.
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

/// model->forward(x) in `precision`: with "bf16" every layer but a final LogSoftmax runs under
/// PrecisionScope, and the result is widened to float32 before that LogSoftmax (and before the loss).
/// Always returns float32.
at::Tensor forward_in_precision(torch::nn::Sequential& model, const at::Tensor& x, const std::string& precision);

/// Resolves --device: "auto" takes CUDA when LibTorch has it.
c10::Device resolve_device(const std::string& name);

/// Loss and confusion matrix of a model on a dataset (eval mode, no gradients).
struct EvalResult {
  double loss = 0;
  ConfusionMatrix confusion{1};
};

/// Evaluates `model` on every image of `set`, normalized with config.mean/std, in batches.
/// With precision "bf16" the forward pass runs under PrecisionScope.
EvalResult evaluate(const torch::nn::Sequential& model, const data::Cifar10& set, const ModelConfig& config,
                    c10::Device device, int64_t batch_size = 1000, const std::string& precision = "fp32");

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
  double total_seconds = 0;
  std::string run_dir;
};

/// Runs training. The constructor builds the model and optimizer; run() trains and writes
/// runs/<name>/: config.json, metrics.csv, checkpoint.pt (every epoch), model.pt, results.json.
class FusedMlpStep;

class Trainer {
 public:
  /// A new run into `run_dir` (which must not exist yet), or with `resume` a stopped run continued
  /// from run_dir/checkpoint.pt. `train_set` and `val_set` are already subset to the classes.
  Trainer(TrainConfig config, const data::Cifar10& train_set, const data::Cifar10& val_set,
          std::vector<double> mean, std::vector<double> std, std::string run_dir, bool resume);

  ~Trainer();

  TrainResult run(std::ostream& log, bool progress_bar);

  /// Whether the steps run fused (TrainConfig::step) rather than through autograd.
  bool fused() const { return fused_ != nullptr; }
  /// Whether the fused step runs its input layer on birdplane's AVX-512 kernels
  /// (FusedMlpStep::own_kernels).
  bool input_layer_kernels() const;

  const torch::nn::Sequential& model() const { return model_; }
  const ModelConfig& model_config() const { return model_config_; }

 private:
  void write_metrics(const std::vector<EpochMetrics>& rows) const;

  TrainConfig config_;
  const data::Cifar10& train_set_;
  const data::Cifar10& val_set_;
  ModelConfig model_config_;
  nn::LossKind loss_;
  c10::Device device_;
  torch::nn::Sequential model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<FusedMlpStep> fused_;  ///< set when the steps run fused
  std::string run_dir_;
  int64_t start_epoch_ = 0;
  std::vector<EpochMetrics> history_;
};

/// Reads metrics.csv rows written by a run (for resume and reports).
std::vector<EpochMetrics> read_metrics(const std::string& path);

}  // namespace birdplane::train
