#include "birdplane/train/evaluate.h"

#include <ATen/autocast_mode.h>

#include <algorithm>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/speedrun_net.h"
#include "birdplane/transforms/functional.h"
#include "common/reused_memory.h"
#include "train/speedrun_step.h"

namespace birdplane::train {

PrecisionScope::PrecisionScope(bool bf16) : on_(bf16) {
  if (!on_) return;
  previous_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

namespace {

// The speedrun network in evaluation mode on an AVX-512 CPU, where its fused kernels run.
nn::SpeedrunNet* fused_speedrun(nn::Classifier& model, const at::Tensor& x) {
  if (model.is_training() || !x.device().is_cpu()) return nullptr;
  auto* net = dynamic_cast<nn::SpeedrunNet*>(&model);
  return net && speedrun_eval_fused(*net) ? net : nullptr;
}

// Float32 logits, in bf16 under autocast where asked (the speedrun network through its own kernels).
at::Tensor logits_in_precision(nn::Classifier& model, const at::Tensor& x, Precision precision) {
  if (auto* net = fused_speedrun(model, x)) return speedrun_eval_logits(*net, x, precision == Precision::kBf16);
  PrecisionScope scope(precision == Precision::kBf16);
  return model.logits(x).to(at::kFloat);
}

}  // namespace

at::Tensor forward_in_precision(nn::Classifier& model, const at::Tensor& x, Precision precision) {
  if (precision != Precision::kBf16 && !fused_speedrun(model, x)) return model.forward(x);
  const auto z = logits_in_precision(model, x, precision);
  return model.ends_in_log_softmax() ? torch::log_softmax(z, 1) : z;
}

at::Tensor forward_with_tta(nn::Classifier& model, const at::Tensor& x, Precision precision, Tta tta) {
  if (tta == Tta::kNone) return forward_in_precision(model, x, precision);
  auto logits = [&](const at::Tensor& v) { return logits_in_precision(model, v, precision); };
  std::vector<at::Tensor> views = {x};
  if (tta == Tta::kFlipShift) {
    const int64_t h = x.size(2), w = x.size(3);
    const auto padded = torch::reflection_pad2d(x, {1, 1, 1, 1});
    views.push_back(padded.slice(2, 0, h).slice(3, 0, w));          // shifted down-right by one pixel
    views.push_back(padded.slice(2, 2, h + 2).slice(3, 2, w + 2));  // up-left
  }
  // The image's own pair weighs half, the two shifted pairs a quarter each (airbench's weighting: the
  // unshifted view is the likeliest).
  at::Tensor mean;
  for (size_t i = 0; i < views.size(); ++i) {
    const auto z = logits(views[i].contiguous()) + logits(views[i].flip({3}).contiguous());
    const double weight = views.size() == 1 ? 0.5 : (i == 0 ? 0.25 : 0.125);
    mean = mean.defined() ? mean + z * weight : z * weight;
  }
  return model.ends_in_log_softmax() ? torch::log_softmax(mean, 1) : mean;
}

PrecisionScope::~PrecisionScope() {
  if (!on_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights (they change every step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(previous_enabled_);
  at::autocast::set_autocast_cpu_dtype(previous_dtype_);
}

c10::Device resolve_device(DeviceKind device) {
  if (device == DeviceKind::kCpu) return c10::Device(c10::kCPU);
  if (device == DeviceKind::kCuda) {
    BIRDPLANE_CHECK_SETTING(torch::cuda::is_available(), "device",
                            "cuda: this LibTorch has no CUDA device available; use cpu or auto");
    return c10::Device(c10::kCUDA);
  }
  return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
}

EvalResult evaluate(nn::Classifier& model, const data::ImageSet& set, const ModelConfig& config, c10::Device device,
                    int64_t batch_size, Precision precision) {
  BIRDPLANE_CHECK(batch_size >= 1, "evaluate: the batch size must be at least 1, got {}", batch_size);
  BIRDPLANE_CHECK(set.image_shape() == model.spec().image_shape,
                  "the images of {} are {}x{}x{}; the model takes [{}]", set.source().empty() ? "the data" : set.source(),
                  set.images().size(1), set.images().size(2), set.images().size(3),
                  fmt::join(model.spec().image_shape, "x"));
  torch::NoGradGuard no_grad;
  ReusedCpuMemory reuse;  // every batch needs the same large activations: no page faults after the first
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  r.confusion = ConfusionMatrix(model.spec().num_classes);
  MeanMeter loss;
  const int64_t n = static_cast<int64_t>(*set.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min(n, start + batch_size);
    auto x = transforms::functional::to_normalized(set.images().slice(0, start, end), config.mean, config.std);
    auto y = set.labels().slice(0, start, end);
    x = x.to(device);
    y = y.to(device);
    auto out = forward_with_tta(model, x, precision, config.tta);
    loss.add(nn::compute_loss(config.loss, out, y, model.ends_in_log_softmax()).item<double>(), end - start);
    r.confusion.add(out.argmax(1), y);
  }
  r.loss = loss.mean();
  model.train(was_training);
  return r;
}

}  // namespace birdplane::train
