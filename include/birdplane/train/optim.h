// Optimizers: SGD (momentum, weight decay, Nesterov) and Adam, configured from flags.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

namespace birdplane::train {

/// Which optimizer.
enum class OptimizerKind { kSgd, kAdam };
inline constexpr OptimizerKind kOptimizerKinds[] = {OptimizerKind::kSgd, OptimizerKind::kAdam};
std::string to_string(OptimizerKind kind);
/// "sgd" or "adam" (a SettingError for "optimizer" otherwise).
OptimizerKind parse_optimizer(const std::string& text);

/// Optimizer settings. Defaults are the book's: SGD with lr 1e-2 and nothing else.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 1e-2;
  double momentum = 0.0;      ///< sgd only
  double weight_decay = 0.0;
  bool nesterov = false;      ///< sgd only; needs momentum > 0
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< adam only

  /// Throws a SettingError naming the setting ("lr", "momentum", ...) when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  static OptimizerConfig from_json(const nlohmann::json& j);
};

/// Builds the optimizer over `params`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& config,
                                                        std::vector<at::Tensor> params);

}  // namespace birdplane::train
