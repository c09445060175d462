#include "birdplane/train/optim.h"

#include <cmath>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "birdplane/check.h"
#include "common/parse_named.h"

namespace birdplane::train {

std::string to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdam: return "adam";
    case OptimizerKind::kAdamW: return "adamw";
    case OptimizerKind::kSgd: break;
  }
  return "sgd";
}

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
  BIRDPLANE_CHECK_SETTING(std::isfinite(eps) && eps > 0, "eps", "{} is not allowed; expected above 0", eps);
  BIRDPLANE_CHECK_SETTING(std::isfinite(head_lr_multiplier) && head_lr_multiplier > 0, "head_lr_multiplier",
                          "{} is not allowed; expected above 0", head_lr_multiplier);
}

nlohmann::json OptimizerConfig::to_json() const {
  return {{"name", to_string(kind)},   {"lr", lr},       {"momentum", momentum}, {"weight_decay", weight_decay},
          {"nesterov", nesterov}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps},
          {"no_decay_bias_norm", no_decay_bias_norm}, {"head_lr_multiplier", head_lr_multiplier}};
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
  c.no_decay_bias_norm = j.value("no_decay_bias_norm", false);  // runs from before parameter groups
  c.head_lr_multiplier = j.value("head_lr_multiplier", 1.0);
  return c;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& c, std::vector<at::Tensor> params) {
  ParameterGroup all;
  all.name = "body";
  all.params = std::move(params);
  all.lr = c.lr;
  all.weight_decay = c.weight_decay;
  return make_optimizer(c, std::vector<ParameterGroup>{std::move(all)});
}

std::string head_module(const std::vector<std::pair<std::string, at::Tensor>>& named_parameters) {
  if (named_parameters.empty()) return "";
  const std::string& last = named_parameters.back().first;
  const auto dot = last.rfind('.');
  return dot == std::string::npos ? "" : last.substr(0, dot);
}

std::vector<ParameterGroup> parameter_groups(const OptimizerConfig& c,
                                             const std::vector<std::pair<std::string, at::Tensor>>& named) {
  const std::string head = c.head_lr_multiplier != 1.0 ? head_module(named) : "";
  const bool split_decay = c.no_decay_bias_norm && c.weight_decay != 0;
  ParameterGroup groups[4];
  const char* names[4] = {"body", "body-no-decay", "head", "head-no-decay"};
  for (int i = 0; i < 4; ++i) {
    groups[i].name = names[i];
    groups[i].lr = i >= 2 ? c.lr * c.head_lr_multiplier : c.lr;
    groups[i].weight_decay = i % 2 == 1 ? 0.0 : c.weight_decay;
  }
  for (const auto& [key, p] : named) {
    const bool in_head = !head.empty() && key.compare(0, head.size() + 1, head + ".") == 0;
    const bool no_decay = split_decay && p.dim() <= 1;
    auto& g = groups[(in_head ? 2 : 0) + (no_decay ? 1 : 0)];
    g.keys.push_back(key);
    g.params.push_back(p);
  }
  std::vector<ParameterGroup> out;
  for (auto& g : groups)
    if (!g.params.empty()) out.push_back(std::move(g));
  return out;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& c,
                                                        const std::vector<ParameterGroup>& groups) {
  c.validate();
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& g : groups) {
    std::unique_ptr<torch::optim::OptimizerOptions> options;
    switch (c.kind) {
      case OptimizerKind::kAdam:
        options = std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(g.lr)
                                                                  .betas(std::make_tuple(c.beta1, c.beta2))
                                                                  .eps(c.eps)
                                                                  .weight_decay(g.weight_decay));
        break;
      case OptimizerKind::kAdamW:
        options = std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(g.lr)
                                                                   .betas(std::make_tuple(c.beta1, c.beta2))
                                                                   .eps(c.eps)
                                                                   .weight_decay(g.weight_decay));
        break;
      case OptimizerKind::kSgd:
        options = std::make_unique<torch::optim::SGDOptions>(
            torch::optim::SGDOptions(g.lr).momentum(c.momentum).weight_decay(g.weight_decay).nesterov(c.nesterov));
        break;
    }
    param_groups.emplace_back(g.params, std::move(options));
  }
  // Every group carries its own options; the defaults only serve groups added later.
  switch (c.kind) {
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::Adam>(
          std::move(param_groups),
          torch::optim::AdamOptions(c.lr).betas(std::make_tuple(c.beta1, c.beta2)).eps(c.eps).weight_decay(c.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamW>(
          std::move(param_groups),
          torch::optim::AdamWOptions(c.lr).betas(std::make_tuple(c.beta1, c.beta2)).eps(c.eps).weight_decay(c.weight_decay));
    case OptimizerKind::kSgd: break;
  }
  return std::make_unique<torch::optim::SGD>(
      std::move(param_groups),
      torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay).nesterov(c.nesterov));
}

}  // namespace birdplane::train
