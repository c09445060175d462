// One training step of the speedrun network: LibTorch's autograd, or birdplane's own backward pass
// (speedrun_step.cpp), both followed by the same optimizer step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <torch/optim/optimizer.h>
#include <torch/optim/sgd.h>

#include "birdplane/nn/speedrun_net.h"
#include "birdplane/train/settings.h"
#include "birdplane/train/speedrun.h"

namespace birdplane::train {

struct SpeedrunStepResult {
  double loss_sum = 0;  ///< the batch's summed (label-smoothed) cross-entropy
  int64_t correct = 0;  ///< images whose top logit is their label
};

class SpeedrunStep {
 public:
  /// kAuto and kFused pick the fused backward pass (an Error for kFused where it cannot run). `conv`
  /// picks the fused step's algorithm for the wide 3x3 convolutions (a SettingError for kWinograd
  /// where it cannot run).
  SpeedrunStep(nn::SpeedrunNet& net, StepKind kind, bool bf16, double label_smoothing,
               ConvAlgorithm conv = ConvAlgorithm::kAuto);
  ~SpeedrunStep();
  /// Forward, backward and optimizer.step() on images x (float [B,3,32,32], normalized) and labels y.
  SpeedrunStepResult run(const at::Tensor& x, const at::Tensor& y, torch::optim::Optimizer& optimizer);
  /// "fused", "fused, winograd" or "autograd" (with the reason when the fused step was not used).
  const std::string& description() const { return description_; }

  /// Only the gradients (into each parameter's grad), no optimizer step: for tests comparing the two.
  SpeedrunStepResult gradients(const at::Tensor& x, const at::Tensor& y);

 private:
  struct Fused;
  nn::SpeedrunNet& net_;
  bool bf16_;
  double smoothing_;
  std::unique_ptr<Fused> fused_;
  std::string description_;
};

/// Whether speedrun_eval_logits can run `net` here (an AVX-512 CPU, the network on the CPU).
bool speedrun_eval_fused(nn::SpeedrunNet& net);
/// The network's logits in evaluation mode (running statistics) through the fused step's kernels: each
/// convolution is followed by one pass (2x2 max pool, batch norm and GELU; or batch norm and GELU) in
/// place of autocast's three or four. In bf16 the activations are bfloat16 as under autocast; in fp32
/// float32. Logits are float32. `conv` as for the training step (kAuto: the wide convolutions in
/// Winograd's form in bf16 where winograd::preferred()).
at::Tensor speedrun_eval_logits(nn::SpeedrunNet& net, const at::Tensor& images, bool bf16,
                                ConvAlgorithm conv = ConvAlgorithm::kAuto);

/// While one lives, speedrun_eval_logits on this thread takes `conv` where it is asked for kAuto: a run
/// (run_speedrun) evaluates through the shared evaluation path (forward_with_tta) with its own setting.
class SpeedrunEvalConv {
 public:
  explicit SpeedrunEvalConv(ConvAlgorithm conv);
  ~SpeedrunEvalConv();
  SpeedrunEvalConv(const SpeedrunEvalConv&) = delete;
  SpeedrunEvalConv& operator=(const SpeedrunEvalConv&) = delete;

 private:
  ConvAlgorithm previous_;
};

/// The recipe's optimizer: Nesterov SGD over two groups, the batch-norm shifts (rate x bias_scaler) and
/// the rest, each with the decoupled rate and decay of `options`; base_lr receives both groups' rates.
std::unique_ptr<torch::optim::SGD> make_speedrun_optimizer(nn::SpeedrunNet& net, const SpeedrunOptions& options,
                                                           double base_lr[2]);
/// Sets the two groups' rates to base_lr times `factor` (speedrun_schedule's).
void set_speedrun_lr(torch::optim::Optimizer& optimizer, const double base_lr[2], double factor);

}  // namespace birdplane::train
