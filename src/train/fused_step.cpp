#include "train/fused_step.h"

#include <cmath>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "train/fused_convnet.h"
#include "train/linear_kernels.h"

namespace birdplane::train {

namespace {

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as c10::BFloat16 does for every finite value (a NaN weight has already
// made the loss non-finite, which stops the run).
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// w -= lr * g (g in bf16), then w16 = bf16(w) for elements [begin, end). Compiled for AVX-512, AVX2
// and the baseline; the loader picks the best the CPU has.
__attribute__((target_clones("avx512f", "avx2", "default")))
void update_and_cast_range(float* wp, const uint16_t* gp, uint16_t* w16p, float step, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = wp[i] - step * bf16_bits_to_float(gp[i]);
    wp[i] = v;
    w16p[i] = float_to_bf16_bits(v);
  }
}

// One pass over the weight instead of three (widen the gradient, update, cast for the next forward).
void update_and_cast(at::Tensor& w, const at::Tensor& g, double lr, at::Tensor& w16) {
  float* wp = w.data_ptr<float>();
  const auto* gp = reinterpret_cast<const uint16_t*>(g.data_ptr<at::BFloat16>());
  auto* w16p = reinterpret_cast<uint16_t*>(w16.data_ptr<at::BFloat16>());
  const float step = static_cast<float>(lr);
  at::parallel_for(0, w.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    update_and_cast_range(wp, gp, w16p, step, begin, end);
  });
}

}  // namespace

at::Tensor softmax_loss_grad(const at::Tensor& z, const at::Tensor& y, FusedStep::Result& r,
                             double label_smoothing) {
  const int64_t batch = z.size(0), classes = z.size(1);
  const bool soft = y.dim() == 2;
  BIRDPLANE_CHECK(!soft || (y.size(0) == batch && y.size(1) == classes),
                  "target probabilities [{}, {}] for logits [{}, {}]", y.size(0), y.size(1), batch, classes);
  const auto labels = soft ? at::Tensor() : y.to(at::kLong).contiguous();
  const auto probs = soft ? y.to(at::kFloat).contiguous() : at::Tensor();
  const int64_t* label = soft ? nullptr : labels.data_ptr<int64_t>();
  const float* prob = soft ? probs.data_ptr<float>() : nullptr;
  const double keep = 1.0 - label_smoothing, spread = label_smoothing / static_cast<double>(classes);
  auto g = at::empty_like(z);
  const float* zp = z.data_ptr<float>();
  float* gp = g.data_ptr<float>();
  std::vector<double> e(static_cast<size_t>(classes));
  double total = 0;
  for (int64_t i = 0; i < batch; ++i) {
    const float* row = zp + i * classes;
    float* grow = gp + i * classes;
    int64_t best = 0;
    for (int64_t k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    const float top = row[best];
    double sum = 0;
    for (int64_t k = 0; k < classes; ++k) sum += e[k] = std::exp(static_cast<double>(row[k] - top));
    const double log_sum = std::log(sum);
    // The target of each class: one-hot of the label or the given probabilities, then smoothed.
    auto target = [&](int64_t k) {
      const double t = soft ? static_cast<double>(prob[i * classes + k]) : (k == label[i] ? 1.0 : 0.0);
      return t * keep + spread;
    };
    int64_t truth = 0;
    if (soft) {
      for (int64_t k = 1; k < classes; ++k)
        if (prob[i * classes + k] > prob[i * classes + truth]) truth = k;
    } else {
      truth = label[i];
      BIRDPLANE_CHECK(truth >= 0 && truth < classes, "label {} is out of range for {} classes", truth, classes);
    }
    r.correct += best == truth;
    for (int64_t k = 0; k < classes; ++k) {
      const double q = target(k);
      if (q != 0.0) total -= q * (static_cast<double>(row[k] - top) - log_sum);
      grow[k] = static_cast<float>((e[k] / sum - q) / static_cast<double>(batch));
    }
  }
  r.loss = total / static_cast<double>(batch);
  return g;
}

StepResult FusedStep::run(const at::Tensor& x, const at::Tensor& y, bool stop) {
  if (stop) return {0, 0, 0, true};
  const auto r = step(x, y);
  return {r.loss, r.correct, x.size(0), false};
}

void FusedStep::set_lrs(const std::vector<double>& rates) {
  BIRDPLANE_CHECK(rates.size() == 1, "a fused step has one learning rate, got {}", rates.size());
  lr_ = rates[0];
}

namespace {

// Both losses the fused steps implement have the gradient (softmax - target) / B.
std::string loss_unsupported(nn::LossKind loss, bool ends_in_log_softmax) {
  const bool fits = (loss == nn::LossKind::kNll && ends_in_log_softmax) ||
                    (loss == nn::LossKind::kCrossEntropy && !ends_in_log_softmax);
  if (fits) return "";
  return fmt::format("it implements nll after LogSoftmax and cross-entropy on logits, not {}", nn::to_string(loss));
}

}  // namespace

std::string fused_gradients_unsupported(const StepSetup& setup, bool ends_in_log_softmax) {
  if (!setup.device.is_cpu()) return "it runs on the CPU only";
  if (setup.loss_options.class_weights.defined()) return "its loss gradient has no class weights";
  return loss_unsupported(setup.loss, ends_in_log_softmax);
}

std::string plain_sgd_unsupported(const StepSetup& setup, bool ends_in_log_softmax) {
  if (!setup.device.is_cpu()) return "it runs on the CPU only";
  const auto& optimizer = setup.optimizer;
  if (optimizer.kind != OptimizerKind::kSgd) return fmt::format("it implements SGD only, not {}", to_string(optimizer.kind));
  if (optimizer.momentum != 0 || optimizer.weight_decay != 0 || optimizer.nesterov)
    return "it implements plain SGD only (no momentum, weight decay or Nesterov)";
  if (optimizer.head_lr_multiplier != 1.0) return "it has one learning rate (no head multiplier)";
  if (setup.loss_options.label_smoothing != 0.0 || setup.loss_options.class_weights.defined())
    return "its loss gradient has no label smoothing or class weights";
  if (setup.soft_targets) return "its loss gradient takes class labels, not mixed targets (mixup, cutmix)";
  if (setup.clip_grad_norm > 0 || setup.clip_grad_value > 0)
    return "it updates each weight as its gradient is computed, so it cannot clip the gradients as a whole";
  return loss_unsupported(setup.loss, ends_in_log_softmax);
}

namespace {

StepSetup plain_sgd_setup(nn::LossKind loss, const OptimizerConfig& optimizer, c10::Device device, bool bf16) {
  StepSetup setup;
  setup.loss = loss;
  setup.optimizer = optimizer;
  setup.device = device;
  setup.precision = bf16 ? Precision::kBf16 : Precision::kFp32;
  return setup;
}

}  // namespace

std::string fused_step_unsupported(const nn::Classifier& model, nn::LossKind loss, const OptimizerConfig& optimizer,
                                   c10::Device device, bool bf16) {
  return model.fused_step_unsupported(plain_sgd_setup(loss, optimizer, device, bf16));
}

std::unique_ptr<FusedStep> make_fused_step(nn::Classifier& model, double lr, bool bf16) {
  OptimizerConfig sgd;
  sgd.lr = lr;
  const auto loss = model.ends_in_log_softmax() ? nn::LossKind::kNll : nn::LossKind::kCrossEntropy;
  return model.make_fused_step(plain_sgd_setup(loss, sgd, c10::Device(c10::kCPU), bf16));
}

}  // namespace birdplane::train

namespace birdplane::nn {

std::string Mlp::fused_step_unsupported(const train::StepSetup& setup) const {
  return train::plain_sgd_unsupported(setup, ends_in_log_softmax());
}

std::unique_ptr<train::FusedStep> Mlp::make_fused_step(const train::StepSetup& setup) {
  const std::string why = fused_step_unsupported(setup);
  BIRDPLANE_CHECK(why.empty(), "the fused step cannot train {}: {}", spec().name, why);
  return std::make_unique<train::FusedMlpStep>(*this, setup.optimizer.lr, setup.precision == train::Precision::kBf16);
}

}  // namespace birdplane::nn

namespace birdplane::train {

FusedMlpStep::FusedMlpStep(nn::Mlp& model, double lr, bool bf16)
    : FusedStep(lr), relu_(model.options().activation == nn::Activation::kRelu), bf16_(bf16),
      own_kernels_(!bf16 && kernels::enabled()) {
  for (const auto& linear : model.linears()) {
    {
      BIRDPLANE_CHECK(linear->weight.scalar_type() == at::kFloat && linear->weight.is_contiguous() &&
                          linear->bias.defined(),
                      "the fused step needs float32 contiguous Linear layers with biases");
      weights_.push_back(linear->weight);
      biases_.push_back(linear->bias);
    }
  }
  BIRDPLANE_CHECK(!weights_.empty(), "the fused step found no Linear layer in the model");
  refresh_copies();
}

void FusedMlpStep::refresh_copies() {
  if (!bf16_) return;
  torch::NoGradGuard no_grad;
  weights_bf16_.clear();
  for (const auto& w : weights_) weights_bf16_.push_back(w.detach().to(at::kBFloat16).contiguous());
}

FusedMlpStep::Result FusedMlpStep::step(const at::Tensor& images, const at::Tensor& y) {
  torch::NoGradGuard no_grad;
  const size_t layers = weights_.size();
  const int64_t batch = images.size(0);
  const at::Tensor x = images.reshape({batch, -1});
  const auto dtype = bf16_ ? at::kBFloat16 : at::kFloat;
  auto weight = [&](size_t l) -> const at::Tensor& { return bf16_ ? weights_bf16_[l] : weights_[l]; };

  // Forward, keeping each layer's input (the activations the weight products need).
  std::vector<at::Tensor> inputs(layers);
  inputs[0] = x.to(dtype);
  at::Tensor z;
  for (size_t l = 0; l < layers; ++l) {
    if (l == 0 && own_kernels_) {  // the input layer, most of the work: [O, B] from the kernel, seen as [B, O]
      inputs[0] = inputs[0].contiguous();
      z = kernels::linear_forward_t(inputs[0], weights_[0], biases_[0]).t();
    } else {
      z = at::addmm(biases_[l].to(dtype), inputs[l], weight(l).t());
    }
    if (l + 1 < layers) inputs[l + 1] = relu_ ? z.relu_() : z.tanh_();
  }
  // The loss, the correct count and d(mean loss)/d(logits) = (softmax - onehot) / B (the same for nll
  // on log_softmax and for cross-entropy) in one loop over the [B, K] logits, in float32 whatever the
  // products ran in: a dozen small tensor ops otherwise, each dispatched and allocated.
  Result r;
  auto g = softmax_loss_grad(z.to(at::kFloat).contiguous(), y, r);

  for (size_t l = layers; l-- > 0;) {
    auto g_in = g.to(dtype);
    at::Tensor g_prev;
    if (l > 0) {  // through this layer's weight (before its update) and the activation before it
      g_prev = at::mm(g_in, weight(l));
      const auto& a = inputs[l];
      g_prev = relu_ ? at::threshold_backward(g_prev, a, 0) : at::tanh_backward(g_prev, a);  // g * (1 - a^2)
    }
    biases_[l].sub_(g.sum(0, false, at::kFloat), lr_);
    if (bf16_) {
      auto grad = at::mm(g_in.t(), inputs[l]);
      update_and_cast(weights_[l], grad, lr_, weights_bf16_[l]);
    } else if (l == 0 && own_kernels_) {
      kernels::linear_update_(weights_[0], g_in, inputs[0], -lr_);
    } else {
      weights_[l].addmm_(g_in.t(), inputs[l], 1.0, -lr_);  // W <- W - lr * g^T a, no gradient stored
    }
    g = g_prev;
  }
  return r;
}

}  // namespace birdplane::train
