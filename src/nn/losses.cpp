#include "birdplane/nn/losses.h"

#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::nn {

LossKind parse_loss(const std::string& name) {
  if (name == "nll") return LossKind::kNll;
  if (name == "cross-entropy" || name == "ce") return LossKind::kCrossEntropy;
  if (name == "mse") return LossKind::kMse;
  fail_setting("loss", "unknown loss '{}'; expected nll, cross-entropy or mse", name);
}

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::kNll: return "nll";
    case LossKind::kCrossEntropy: return "cross-entropy";
    case LossKind::kMse: return "mse";
  }
  return "?";
}

void check_loss_fits(LossKind kind, bool log_softmax) {
  if (kind == LossKind::kNll && !log_softmax) {
    fail_setting("loss",
                 "nll expects log-probabilities, but this model ends in plain logits (no LogSoftmax); use "
                 "cross-entropy, which applies log_softmax itself");
  }
  if (kind == LossKind::kCrossEntropy && log_softmax) {
    fail_setting("loss", "cross-entropy expects logits, but this model already ends in LogSoftmax; use nll");
  }
}

at::Tensor probabilities(const at::Tensor& output, bool log_probs) {
  return log_probs ? output.exp() : torch::softmax(output, 1);
}

at::Tensor compute_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target,
                        bool log_probs, const LossOptions& options) {
  const bool weighted = options.class_weights.defined();
  if (options.label_smoothing != 0.0 || weighted || target.is_floating_point()) {
    BIRDPLANE_CHECK_SETTING(kind != LossKind::kMse, "loss",
                            "mse takes no label smoothing, class weights or mixed targets; use cross-entropy (or nll)");
    const auto weight = weighted ? options.class_weights.to(output.device()) : at::Tensor();
    // cross_entropy applies log_softmax, which leaves log-probabilities unchanged: nll gets the same.
    return at::cross_entropy_loss(output, target, weight, at::Reduction::Mean, -100, options.label_smoothing);
  }
  switch (kind) {
    case LossKind::kNll: return torch::nll_loss(output, target);
    case LossKind::kCrossEntropy: return torch::cross_entropy_loss(output, target);
    case LossKind::kMse: {
      auto probs = probabilities(output, log_probs);
      auto onehot = torch::one_hot(target, output.size(1)).to(probs.scalar_type());
      return torch::mse_loss(probs, onehot);
    }
  }
  throw InternalError("unhandled loss kind");
}

}  // namespace birdplane::nn
