// A training step for MLPs with plain SGD that needs no autograd: the backward pass written out by
// hand, and each weight updated by the same matrix product that computes its gradient
// (W <- W - lr * g^T a as one addmm_), so no gradient tensor is ever stored.
//
// Against autograd plus optimizer.step() it saves, per step and per weight matrix, writing the
// gradient, reading it back and a separate update pass (for book-small: about 12 of 30 MB moved),
// plus the graph bookkeeping. The arithmetic is the same; results agree with the autograd step to
// float rounding (tests/unit/train/fused_step_test.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include "birdplane/nn/losses.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/step.h"

namespace birdplane::train {

/// Why the fused step cannot train `model` with this loss, optimizer and device, or "" when it can
/// (the model's own Classifier::fused_step_unsupported; kept for tests and benchmarks).
std::string fused_step_unsupported(const nn::Classifier& model, nn::LossKind loss, const OptimizerConfig& optimizer,
                                   c10::Device device, bool bf16 = false);

/// The model's fused step for plain SGD at `lr` (an Error where it does not apply).
std::unique_ptr<FusedStep> make_fused_step(nn::Classifier& model, double lr, bool bf16);

/// Why no fused step that writes gradients (for the optimizer to apply) can train with `setup`, or "":
/// the CPU, nll after LogSoftmax or cross-entropy on logits, no class weights. Any optimizer, parameter
/// groups, label smoothing, mixed targets and clipping are fine. make_step then hands the update to the
/// optimizer when plain_sgd_unsupported(setup) is not "" (train/step.cpp).
std::string fused_gradients_unsupported(const StepSetup& setup, bool ends_in_log_softmax);

/// For logits z [B, K] (float32, contiguous) and targets y, int64 labels [B] or probabilities [B, K]:
/// with q the targets as probabilities, smoothed as F.cross_entropy's label_smoothing does
/// (q (1 - s) + s / K), sets r to the mean cross-entropy -sum q log_softmax(z) and the count of rows
/// whose largest logit (the first, on ties) is the label (for probabilities: their largest), and
/// returns d(mean loss)/dz = (softmax(z) - q) / B.
at::Tensor softmax_loss_grad(const at::Tensor& z, const at::Tensor& y, FusedStep::Result& r,
                             double label_smoothing = 0.0);

/// The step itself. Holds references to the model's parameters and updates them in place.
class FusedMlpStep : public FusedStep {
 public:
  /// Updates `model`'s linear layers in place; `bf16` runs the matrix products in bfloat16 with
  /// float32 master weights (a bfloat16 copy of each weight, refreshed by the update pass).
  FusedMlpStep(nn::Mlp& model, double lr, bool bf16);

  /// One SGD step on images x [B, ...] float32 (flattened to [B, in_features]) and labels y int64 [B].
  Result step(const at::Tensor& x, const at::Tensor& y) override;

  /// Whether the input layer's products run on birdplane's AVX-512 kernels (train/linear_kernels.h):
  /// in fp32 on a CPU with AVX-512, unless the environment sets BIRDPLANE_KERNELS=blas.
  bool own_kernels() const override { return own_kernels_; }

 private:
  /// Reads the float32 weights into the bfloat16 copies; a no-op in fp32.
  void refresh_copies();

  std::vector<at::Tensor> weights_, biases_;  ///< the model's own parameters, float32
  std::vector<at::Tensor> weights_bf16_;      ///< bf16 only: copies used by the products
  bool relu_;
  bool bf16_;
  bool own_kernels_;
};

}  // namespace birdplane::train
