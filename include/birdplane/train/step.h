// One training step, behind one interface: autograd with an optimizer (its gradients averaged across
// ranks in a multi-process run), or a model's own fused step (the backward pass written out, plain
// SGD in place). make_step chooses, in one place; the epoch loop only calls Step::run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "birdplane/nn/losses.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/settings.h"

namespace torch::optim {
class Optimizer;
}
namespace birdplane::nn {
class Classifier;
}

namespace birdplane::train {

class GradientReducer;

/// What one step did.
struct StepResult {
  double loss = 0;       ///< mean loss over the step's images (before the update; all ranks' images)
  int64_t correct = 0;   ///< images whose largest output was the label
  int64_t images = 0;    ///< images the step trained on (all ranks)
  bool stopped = false;  ///< a stop was asked (on any rank); the weights were not updated
};

/// A training step on a batch of float images [B,C,H,W] (normalized) and int64 labels [B], or float
/// target probabilities [B,K] where the setup says soft_targets.
class Step {
 public:
  virtual ~Step() = default;
  /// Trains on (x, y), unless `stop` is true: then nothing changes and the result says stopped (a
  /// multi-process step first agrees with the other ranks, so every rank stops after the same step).
  /// A loss that is not finite leaves the weights as they were.
  virtual StepResult run(const at::Tensor& x, const at::Tensor& y, bool stop) = 0;
  /// Whether this is a fused step (no autograd).
  virtual bool fused() const = 0;
  /// Whether its input layer runs on birdplane's own AVX-512 kernels.
  virtual bool own_kernels() const { return false; }
  /// The learning rate of each parameter group from the next step on (the optimizer's groups, in
  /// order; a fused step has one). The schedule calls this before a step when the rate changes.
  virtual void set_lrs(const std::vector<double>& rates) = 0;
};

/// What a step is built for.
struct StepSetup {
  nn::LossKind loss = nn::LossKind::kCrossEntropy;
  nn::LossOptions loss_options;  ///< label smoothing, class weights
  OptimizerConfig optimizer;
  double clip_grad_norm = 0.0;   ///< > 0: gradients scaled to at most this 2-norm in all (clip_grad_norm_)
  double clip_grad_value = 0.0;  ///< > 0: each gradient element clamped to [-v, v] (clip_grad_value_)
  bool soft_targets = false;     ///< the labels come as probabilities [B, K] (mixup, cutmix)
  c10::Device device = c10::Device(c10::kCPU);
  Precision precision = Precision::kFp32;
};

/// A step with the backward pass written out and each parameter updated by plain SGD in place, offered
/// by a model (nn::Classifier::fused_step). Holds references to the model's parameters.
class FusedStep : public Step {
 public:
  struct Result {
    double loss = 0;      ///< mean loss over the batch (before the update)
    int64_t correct = 0;  ///< images whose largest output was the label (before the update)
  };
  /// One SGD step on images x [B, C, H, W] float32 and labels y int64 [B].
  virtual Result step(const at::Tensor& x, const at::Tensor& y) = 0;

  StepResult run(const at::Tensor& x, const at::Tensor& y, bool stop) final;
  bool fused() const final { return true; }
  void set_lrs(const std::vector<double>& rates) final;

 protected:
  explicit FusedStep(double lr) : lr_(lr) {}
  double lr_;  ///< the SGD learning rate of the next step
};

/// The reason no fused step applies to `setup` on a model of any kind, or "": the CPU, SGD without
/// momentum, weight decay, Nesterov or a head multiplier, nll after LogSoftmax or cross-entropy on
/// logits (the same gradient) without label smoothing or class weights, and no gradient clipping. Models that offer a fused step check this first, then their own limits.
std::string plain_sgd_unsupported(const StepSetup& setup, bool ends_in_log_softmax);

/// The step of a run, chosen here and nowhere else:
///  - `kind` kAutograd, or a model without a fused step for `setup`: autograd and `optimizer`, with
///    `reducer` (when given) averaging the gradients across ranks;
///  - a fused step where the model offers one and kind allows it. In a multi-process run (`reducer` given)
///    the fused step steps aside, since it updates each weight where its gradient is computed, before
///    any averaging; `note` then says so.
/// kind kFused where no fused step applies is a SettingError for "step" that says why.
std::unique_ptr<Step> make_step(nn::Classifier& model, const StepSetup& setup, StepKind kind,
                                torch::optim::Optimizer& optimizer, GradientReducer* reducer, std::string& note);

}  // namespace birdplane::train
