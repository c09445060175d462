// Optimizers: SGD (momentum, weight decay, Nesterov), Adam and AdamW, over parameter groups: no weight
// decay on biases and normalization parameters when asked, and a learning-rate multiplier for the
// head (the module that produces the outputs).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

namespace birdplane::train {

/// Which optimizer.
enum class OptimizerKind { kSgd, kAdam, kAdamW };
inline constexpr OptimizerKind kOptimizerKinds[] = {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW};
std::string to_string(OptimizerKind kind);
/// "sgd", "adam" or "adamw" (a SettingError for "optimizer" otherwise).
OptimizerKind parse_optimizer(const std::string& text);

/// Optimizer settings. Defaults are the book's: SGD with lr 1e-2 and nothing else.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 1e-2;
  double momentum = 0.0;      ///< sgd only
  double weight_decay = 0.0;
  bool nesterov = false;      ///< sgd only; needs momentum > 0
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< adam and adamw only
  /// Biases and normalization parameters (every parameter of one dimension, as timm and torchvision's
  /// reference decide) get no weight decay.
  bool no_decay_bias_norm = false;
  /// The head's learning rate is lr times this (fine-tuning gives a fresh head a higher rate).
  double head_lr_multiplier = 1.0;

  /// Throws a SettingError naming the setting ("lr", "momentum", ...) when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  static OptimizerConfig from_json(const nlohmann::json& j);
};

/// Builds the optimizer over `params`, all in one group.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& config,
                                                        std::vector<at::Tensor> params);

/// Parameters that share a learning rate and weight decay.
struct ParameterGroup {
  std::string name;  ///< "body", "body-no-decay", "head", "head-no-decay"
  std::vector<std::string> keys;
  std::vector<at::Tensor> params;
  double lr = 0, weight_decay = 0;
};

/// The module that produces a model's outputs: the prefix of its last parameter ("fc2" of
/// "fc2.weight", "4" of "4.bias"); empty for a model without parameters.
std::string head_module(const std::vector<std::pair<std::string, at::Tensor>>& named_parameters);

/// The groups `config` asks for, in this order and only those with parameters: the body, the body's
/// biases and normalization parameters (when no_decay_bias_norm and weight decay is on), then the same
/// two of the head (when head_lr_multiplier is not 1). One group when neither applies.
std::vector<ParameterGroup> parameter_groups(const OptimizerConfig& config,
                                             const std::vector<std::pair<std::string, at::Tensor>>& named_parameters);

/// Builds the optimizer over `groups` (each with its own lr and weight decay).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& config,
                                                        const std::vector<ParameterGroup>& groups);

}  // namespace birdplane::train
