#include "birdplane/train/optim.h"

#include <cmath>

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include "birdplane/check.h"
#include "common/parse_named.h"

namespace birdplane::train {

std::string to_string(OptimizerKind kind) { return kind == OptimizerKind::kAdam ? "adam" : "sgd"; }

OptimizerKind parse_optimizer(const std::string& text) { return parse_named(kOptimizerKinds, text, "optimizer"); }

void OptimizerConfig::validate() const {
  BIRDPLANE_CHECK_SETTING(std::isfinite(lr) && lr > 0, "lr", "{} is not allowed; the learning rate must be above 0",
                          lr);
  BIRDPLANE_CHECK_SETTING(std::isfinite(momentum) && momentum >= 0 && momentum < 1, "momentum",
                          "{} is not allowed; expected 0 <= momentum < 1", momentum);
  BIRDPLANE_CHECK_SETTING(std::isfinite(weight_decay) && weight_decay >= 0, "weight_decay",
                          "{} is not allowed; expected 0 or more", weight_decay);
  BIRDPLANE_CHECK_SETTING(!nesterov || (kind == OptimizerKind::kSgd && momentum > 0), "nesterov",
                          "Nesterov momentum needs the sgd optimizer and a momentum above 0");
  BIRDPLANE_CHECK_SETTING(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "betas",
                          "({}, {}) is not allowed; each must be in [0, 1)", beta1, beta2);
}

nlohmann::json OptimizerConfig::to_json() const {
  return {{"name", to_string(kind)},   {"lr", lr},       {"momentum", momentum}, {"weight_decay", weight_decay},
          {"nesterov", nesterov}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}};
}

OptimizerConfig OptimizerConfig::from_json(const nlohmann::json& j) {
  OptimizerConfig c;
  c.kind = parse_optimizer(j.at("name").get<std::string>());
  c.lr = j.at("lr").get<double>();
  c.momentum = j.at("momentum").get<double>();
  c.weight_decay = j.at("weight_decay").get<double>();
  c.nesterov = j.at("nesterov").get<bool>();
  c.beta1 = j.at("beta1").get<double>();
  c.beta2 = j.at("beta2").get<double>();
  c.eps = j.at("eps").get<double>();
  return c;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& c,
                                                        std::vector<at::Tensor> params) {
  c.validate();
  if (c.kind == OptimizerKind::kAdam) {
    return std::make_unique<torch::optim::Adam>(
        std::move(params), torch::optim::AdamOptions(c.lr)
                               .betas(std::make_tuple(c.beta1, c.beta2))
                               .eps(c.eps)
                               .weight_decay(c.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      std::move(params),
      torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay).nesterov(c.nesterov));
}

}  // namespace birdplane::train
