// Evaluating a classifier on a set, and running its forward pass in a precision (fp32, or bf16
// through LibTorch's CPU autocast).
#pragma once

#include <cstdint>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "birdplane/data/image_set.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/settings.h"

namespace birdplane::train {

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

/// The model's output (float32 logits, or log-probabilities for a LogSoftmax model) for images x
/// [B,C,H,W] with test-time augmentation: the mean of the logits over the views `tta` names, then the
/// model's LogSoftmax where it has one. Tta::kNone is forward_in_precision.
at::Tensor forward_with_tta(nn::Classifier& model, const at::Tensor& x, Precision precision, Tta tta);

/// The device for a setting: kAuto takes CUDA when LibTorch has it; kCuda without CUDA is a
/// SettingError for "device".
c10::Device resolve_device(DeviceKind device);

/// Loss and confusion matrix of a model on a dataset (eval mode, no gradients).
struct EvalResult {
  double loss = 0;
  ConfusionMatrix confusion{1};
};

/// Evaluates `model` on every image of `set`, normalized with config.mean/std, in batches, with the
/// test-time augmentation config.tta.
EvalResult evaluate(nn::Classifier& model, const data::ImageSet& set, const ModelConfig& config, c10::Device device,
                    int64_t batch_size = 1000, Precision precision = Precision::kFp32);

}  // namespace birdplane::train
