// The chapter's losses: NLL on log-probabilities, cross-entropy on logits, and MSE between the
// softmax and one-hot targets (the counter-example that saturates).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace birdplane::nn {

/// Which loss, and what it expects of the model's output.
enum class LossKind { kNll, kCrossEntropy, kMse };
inline constexpr LossKind kLossKinds[] = {LossKind::kNll, LossKind::kCrossEntropy, LossKind::kMse};

/// Parses "nll", "cross-entropy" (or "ce"), "mse"; other values are a SettingError for "loss".
LossKind parse_loss(const std::string& name);
std::string to_string(LossKind kind);

/// Checks that the loss fits the output: nll needs LogSoftmax at the end, cross-entropy needs
/// logits. MSE fits both (it applies softmax, or exp to log-probabilities). Throws an Error that
/// says which loss fits (a SettingError for "loss").
void check_loss_fits(LossKind kind, bool model_ends_in_log_softmax);

/// What training may add to the loss: label smoothing (F.cross_entropy's label_smoothing) and class
/// weights (its weight=, a weighted mean over the batch). nll after LogSoftmax takes both the same way
/// (log_softmax leaves log-probabilities as they are); mse takes neither.
struct LossOptions {
  double label_smoothing = 0.0;
  at::Tensor class_weights;  ///< float32 [K]; undefined: every class weighs 1
};

/// Mean loss over the batch. `output` is [B,K] log-probabilities (log_softmax models) or logits;
/// `target` int64 [B], or float [B,K] class probabilities (mixed targets: F.cross_entropy's
/// probability targets; not for mse).
at::Tensor compute_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target,
                        bool output_is_log_probs, const LossOptions& options = {});

/// Class probabilities from the model's output (softmax of logits or exp of log-probabilities).
at::Tensor probabilities(const at::Tensor& output, bool output_is_log_probs);

}  // namespace birdplane::nn
