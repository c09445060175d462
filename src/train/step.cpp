// make_step and the autograd step (single-process, or with its gradients averaged across ranks).
#include "birdplane/train/step.h"

#include <cmath>

#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/distributed.h"
#include "birdplane/train/trainer.h"

namespace birdplane::train {
namespace {

void set_group_lrs(torch::optim::Optimizer& optimizer, const std::vector<double>& rates) {
  auto& groups = optimizer.param_groups();
  BIRDPLANE_CHECK(rates.size() == groups.size(), "{} learning rates for {} parameter groups", rates.size(),
                  groups.size());
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(rates[i]);
}

// Clipping (the norm, then the value) and the optimizer's update, once the step's gradients are in.
void clip_and_update(std::vector<at::Tensor>& params, const StepSetup& setup, torch::optim::Optimizer& optimizer) {
  if (setup.clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, setup.clip_grad_norm);
  if (setup.clip_grad_value > 0) torch::nn::utils::clip_grad_value_(params, setup.clip_grad_value);
  optimizer.step();
}

class AutogradStep : public Step {
 public:
  AutogradStep(nn::Classifier& model, const StepSetup& setup, torch::optim::Optimizer& optimizer,
               GradientReducer* reducer)
      : model_(model), setup_(setup), optimizer_(optimizer), reducer_(reducer), params_(model.parameters()) {}

  StepResult run(const at::Tensor& x, const at::Tensor& y, bool stop) override {
    // A single process stops before the step; ranks first agree, with the step's sums (below).
    if (stop && !reducer_) return {0, 0, 0, true};
    // float32 out of any precision: log_softmax and the loss are computed in float32.
    auto out = forward_in_precision(model_, x, setup_.precision);
    auto loss = nn::compute_loss(setup_.loss, out, y, model_.ends_in_log_softmax(), setup_.loss_options);
    // Gradients set to none rather than zeroed: backward then writes each one fresh instead of adding
    // into a zeroed buffer, two memory passes per parameter saved (PyTorch's zero_grad(set_to_none=True);
    // LibTorch 1.13's zero_grad() only zeroes).
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
    StepResult r;
    r.loss = loss.item<double>();
    // Mixed targets count as their larger share's class.
    r.correct = out.argmax(1).eq(y.dim() == 2 ? y.argmax(1) : y).sum().item<int64_t>();
    r.images = x.size(0);
    if (reducer_) {
      // The step's loss, hits, images and any rank's stop request are summed with the gradients.
      reducer_->begin_step({r.loss * static_cast<double>(r.images), static_cast<double>(r.correct),
                            static_cast<double>(r.images), stop ? 1.0 : 0.0});
      loss.backward();
      const auto sums = reducer_->finish_step();
      if (sums[3] > 0) return {0, 0, 0, true};
      r.images = static_cast<int64_t>(std::llround(sums[2]));
      r.loss = sums[0] / std::max(sums[2], 1.0);
      r.correct = static_cast<int64_t>(std::llround(sums[1]));
    } else {
      loss.backward();
    }
    if (!std::isfinite(r.loss)) return r;
    // Clipped after the gradients are averaged across ranks, so every rank clips the same gradients.
    clip_and_update(params_, setup_, optimizer_);
    return r;
  }
  bool fused() const override { return false; }
  void set_lrs(const std::vector<double>& rates) override { set_group_lrs(optimizer_, rates); }

 private:
  nn::Classifier& model_;
  StepSetup setup_;
  torch::optim::Optimizer& optimizer_;
  GradientReducer* reducer_;
  std::vector<at::Tensor> params_;
};

// A fused step that writes the gradients (a model's fused step for a setup beyond plain SGD), then
// clipping and the optimizer, as the autograd step applies them.
class FusedGradientStep : public Step {
 public:
  FusedGradientStep(std::unique_ptr<FusedStep> fused, nn::Classifier& model, const StepSetup& setup,
                    torch::optim::Optimizer& optimizer)
      : fused_(std::move(fused)), setup_(setup), optimizer_(optimizer), params_(model.parameters()) {}

  StepResult run(const at::Tensor& x, const at::Tensor& y, bool stop) override {
    if (stop) return {0, 0, 0, true};
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
    const auto r = fused_->step(x, y);
    if (std::isfinite(r.loss)) clip_and_update(params_, setup_, optimizer_);
    return {r.loss, r.correct, x.size(0), false};
  }
  bool fused() const override { return true; }
  bool own_kernels() const override { return fused_->own_kernels(); }
  void set_lrs(const std::vector<double>& rates) override { set_group_lrs(optimizer_, rates); }

 private:
  std::unique_ptr<FusedStep> fused_;
  StepSetup setup_;
  torch::optim::Optimizer& optimizer_;
  std::vector<at::Tensor> params_;
};

}  // namespace

std::unique_ptr<Step> make_step(nn::Classifier& model, const StepSetup& setup, StepKind kind,
                                torch::optim::Optimizer& optimizer, GradientReducer* reducer, std::string& note) {
  note.clear();
  if (kind != StepKind::kAutograd) {
    std::string why = model.fused_step_unsupported(setup);
    if (why.empty() && reducer)
      why = "a distributed run averages each gradient across the ranks before the update, and the fused step "
            "updates each weight where its gradient is computed";
    if (!why.empty()) note = "the fused step stepped aside: " + why;  // config.json's step_note
    BIRDPLANE_CHECK_SETTING(kind != StepKind::kFused || why.empty(), "step",
                            "fused: this run cannot use the fused step: {}; use auto or autograd", why);
    if (why.empty()) {
      auto fused = model.make_fused_step(setup);
      // Beyond plain SGD the model's fused step writes gradients (fused_gradients_unsupported).
      if (plain_sgd_unsupported(setup, model.ends_in_log_softmax()).empty()) return fused;
      return std::make_unique<FusedGradientStep>(std::move(fused), model, setup, optimizer);
    }
  }
  return std::make_unique<AutogradStep>(model, setup, optimizer, reducer);
}

}  // namespace birdplane::train
