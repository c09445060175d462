// The layers of torchvision's networks and the Backbone's stages (private to birdplane: backbones.cpp
// builds them, deploy/onnx_export.cpp writes them as ONNX). The layers are our own small modules rather
// than torch::nn's, so that each registers its tensors directly under the names torchvision's do
// (Conv2dNormActivation is an nn.Sequential: its conv is "0" and its norm "1", with no wrapper level
// between), and parameterless layers (activations, Permute, Flatten) leave the gaps in the numbering
// that they leave in torchvision's.
// Sources matched: torchvision 0.14 models/resnet.py, mobilenetv3.py, efficientnet.py, convnext.py
// and ops/misc.py (Conv2dNormActivation, SqueezeExcitation), ops/stochastic_depth.py.
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/nn/backbones.h"

namespace birdplane::nn::backbone {


enum class Act { kNone, kRelu, kHardswish, kSilu, kGelu };

inline at::Tensor activate(const at::Tensor& x, Act a) {
  switch (a) {
    case Act::kRelu: return torch::relu(x);
    case Act::kHardswish: return torch::hardswish(x);
    case Act::kSilu: return torch::silu(x);
    case Act::kGelu: return torch::gelu(x);
    case Act::kNone: break;
  }
  return x;
}

struct Layer : torch::nn::Module {
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};
using LayerPtr = std::shared_ptr<Layer>;

struct Conv : Layer {
  Conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t groups, bool bias)
      : stride_(stride), padding_(padding), groups_(groups) {
    weight = register_parameter("weight", torch::empty({out, in / groups, k, k}));
    if (bias) this->bias = register_parameter("bias", torch::zeros({out}));
    torch::NoGradGuard no_grad;  // PyTorch's default; every architecture below replaces it
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  }
  at::Tensor forward(const at::Tensor& x) override {
    return torch::conv2d(x, weight, bias, stride_, padding_, 1, groups_);
  }
  at::Tensor weight, bias;
  int64_t stride_, padding_, groups_;
};

struct Linear : Layer {
  Linear(int64_t in, int64_t out) {
    weight = register_parameter("weight", torch::empty({out, in}));
    bias = register_parameter("bias", torch::empty({out}));
    // nn.Linear's reset_parameters: the ResNets keep it for fc.
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias.uniform_(-bound, bound);
  }
  at::Tensor forward(const at::Tensor& x) override { return torch::linear(x, weight, bias); }
  at::Tensor weight, bias;
};

// nn.BatchNorm2d: batch statistics in training (updating the running ones with `momentum`, and
// counting batches in num_batches_tracked as Python does), running statistics in eval mode.
struct BatchNorm : Layer {
  BatchNorm(int64_t c, double eps, double momentum) : eps_(eps), momentum_(momentum) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  }
  at::Tensor forward(const at::Tensor& x) override {
    if (is_training()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_,
                             at::globalContext().userEnabledCuDNN());
  }
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps_, momentum_;
};

// nn.LayerNorm over the last dimension, or (channels_first) torchvision's LayerNorm2d over the
// channels of [B,C,H,W].
struct LayerNorm : Layer {
  LayerNorm(int64_t c, bool channels_first) : c_(c), channels_first_(channels_first) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  }
  at::Tensor forward(const at::Tensor& x) override {
    if (!channels_first_) return torch::layer_norm(x, {c_}, weight, bias, 1e-6);
    return torch::layer_norm(x.permute({0, 2, 3, 1}), {c_}, weight, bias, 1e-6).permute({0, 3, 1, 2});
  }
  at::Tensor weight, bias;
  int64_t c_;
  bool channels_first_;
};

// Children "0", "1", ... run in order (nn.Sequential of blocks).
struct Stack : Layer {
  void add(LayerPtr layer) { layers.push_back(register_module(std::to_string(layers.size()), std::move(layer))); }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor out = x;
    for (auto& l : layers) out = l->forward(out);
    return out;
  }
  std::vector<LayerPtr> layers;
};

struct BnSettings {
  double eps = 1e-5, momentum = 0.1;
};

// Conv2dNormActivation: conv "0" (padding (k-1)/2, no bias), batch norm "1" (or a LayerNorm2d), activation.
struct ConvNormAct : Layer {
  ConvNormAct(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups, Act act, BnSettings bn)
      : act_(act) {
    conv = std::make_shared<Conv>(in, out, k, stride, (k - 1) / 2, groups, false);
    register_module("0", conv);
    norm = register_module("1", std::make_shared<BatchNorm>(out, bn.eps, bn.momentum));
  }
  // ConvNeXt's stem: k x k stride k, no padding, a bias, LayerNorm2d, no activation.
  explicit ConvNormAct(int64_t in, int64_t out, int64_t k) : act_(Act::kNone) {
    conv = std::make_shared<Conv>(in, out, k, k, 0, 1, true);
    register_module("0", conv);
    norm = register_module("1", std::make_shared<LayerNorm>(out, true));
  }
  at::Tensor forward(const at::Tensor& x) override { return activate(norm->forward(conv->forward(x)), act_); }
  std::shared_ptr<Conv> conv;
  LayerPtr norm;
  Act act_;
};

// torchvision's StochasticDepth, mode "row": in training each sample's residual branch is dropped with
// probability p and the kept ones scaled by 1 / (1 - p).
inline at::Tensor stochastic_depth(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  size[0] = x.size(0);
  auto noise = torch::empty(size, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

// --- ResNet -------------------------------------------------------------------------------------

inline std::shared_ptr<Stack> downsample(int64_t in, int64_t out, int64_t stride) {
  auto d = std::make_shared<Stack>();
  d->add(std::make_shared<Conv>(in, out, 1, stride, 0, 1, false));
  d->add(std::make_shared<BatchNorm>(out, 1e-5, 0.1));
  return d;
}

struct ResBlock : Layer {
  // BasicBlock (two 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 to 4x width: ResNet V1.5).
  ResBlock(bool bottleneck, int64_t in, int64_t width, int64_t stride) {
    const int64_t out = bottleneck ? width * 4 : width;
    auto conv = [&](int i, int64_t a, int64_t b, int64_t k, int64_t s) {
      convs.push_back(register_module(fmt::format("conv{}", i), std::make_shared<Conv>(a, b, k, s, k / 2, 1, false)));
      bns.push_back(register_module(fmt::format("bn{}", i), std::make_shared<BatchNorm>(b, 1e-5, 0.1)));
    };
    if (bottleneck) {
      conv(1, in, width, 1, 1);
      conv(2, width, width, 3, stride);
      conv(3, width, out, 1, 1);
    } else {
      conv(1, in, width, 3, stride);
      conv(2, width, width, 3, 1);
    }
    if (stride != 1 || in != out) down = register_module("downsample", downsample(in, out, stride));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor out = x;
    for (size_t i = 0; i < convs.size(); ++i) {
      out = bns[i]->forward(convs[i]->forward(out));
      if (i + 1 < convs.size()) out = torch::relu(out);
    }
    return torch::relu(out + (down ? down->forward(x) : x));
  }
  std::vector<std::shared_ptr<Conv>> convs;
  std::vector<std::shared_ptr<BatchNorm>> bns;
  std::shared_ptr<Stack> down;
};

// --- MobileNet V3 and EfficientNet ------------------------------------------------------------------

// torchvision's _make_divisible (from the TensorFlow code): the nearest multiple of 8, at least 8, and
// never more than 10% below v.
inline int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t n = std::max(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

struct SqueezeExcitation : Layer {
  SqueezeExcitation(int64_t c, int64_t squeeze, Act act, bool hard_sigmoid) : act_(act), hard_(hard_sigmoid) {
    fc1 = register_module("fc1", std::make_shared<Conv>(c, squeeze, 1, 1, 0, 1, true));
    fc2 = register_module("fc2", std::make_shared<Conv>(squeeze, c, 1, 1, 0, 1, true));
  }
  at::Tensor forward(const at::Tensor& x) override {
    auto s = fc2->forward(activate(fc1->forward(torch::adaptive_avg_pool2d(x, {1, 1})), act_));
    return x * (hard_ ? torch::hardsigmoid(s) : torch::sigmoid(s));
  }
  std::shared_ptr<Conv> fc1, fc2;
  Act act_;
  bool hard_;
};

// MobileNet V3's InvertedResidual and EfficientNet's MBConv: expand (1x1) when the width changes,
// depthwise k x k, squeeze-and-excitation, project (1x1, no activation); the skip when shapes allow.
struct InvertedResidual : Layer {
  InvertedResidual(int64_t in, int64_t k, int64_t expanded, int64_t out, int64_t stride, Act act, int64_t squeeze,
                   bool hard_sigmoid, BnSettings bn, double drop)
      : residual_(stride == 1 && in == out), drop_(drop) {
    block = register_module("block", std::make_shared<Stack>());
    if (expanded != in) block->add(std::make_shared<ConvNormAct>(in, expanded, 1, 1, 1, act, bn));
    block->add(std::make_shared<ConvNormAct>(expanded, expanded, k, stride, expanded, act, bn));
    if (squeeze > 0)
      block->add(std::make_shared<SqueezeExcitation>(expanded, squeeze, hard_sigmoid ? Act::kRelu : Act::kSilu,
                                                     hard_sigmoid));
    block->add(std::make_shared<ConvNormAct>(expanded, out, 1, 1, 1, Act::kNone, bn));
  }
  at::Tensor forward(const at::Tensor& x) override {
    auto out = block->forward(x);
    return residual_ ? stochastic_depth(out, drop_, is_training()) + x : out;
  }
  std::shared_ptr<Stack> block;
  bool residual_;
  double drop_;
};

// --- ConvNeXt -----------------------------------------------------------------------------------------

// CNBlock: depthwise 7x7 "0", (Permute), LayerNorm "2", Linear 4x "3", (GELU), Linear "5", (Permute),
// times layer_scale, stochastic depth, plus the input.
struct CNBlock : Layer {
  CNBlock(int64_t dim, double drop) : drop_(drop) {
    layer_scale = register_parameter("layer_scale", torch::full({dim, 1, 1}, 1e-6));
    block = register_module("block", std::make_shared<torch::nn::Module>());
    dw = block->register_module("0", std::make_shared<Conv>(dim, dim, 7, 1, 3, dim, true));
    norm = block->register_module("2", std::make_shared<LayerNorm>(dim, false));
    fc1 = block->register_module("3", std::make_shared<Linear>(dim, 4 * dim));
    fc2 = block->register_module("5", std::make_shared<Linear>(4 * dim, dim));
  }
  at::Tensor forward(const at::Tensor& x) override {
    auto y = dw->forward(x).permute({0, 2, 3, 1});
    y = fc2->forward(torch::gelu(fc1->forward(norm->forward(y)))).permute({0, 3, 1, 2});
    return stochastic_depth(layer_scale * y, drop_, is_training()) + x;
  }
  at::Tensor layer_scale;
  std::shared_ptr<torch::nn::Module> block;
  std::shared_ptr<Conv> dw;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> fc1, fc2;
  double drop_;
};

// nn.init.trunc_normal_ as PyTorch computes it: uniform over the truncated range's CDF, erfinv.
inline void trunc_normal(at::Tensor& t, double std, double a = -2.0, double b = 2.0) {
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = cdf(a / std), u = cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}

enum class Family { kResNet, kMobileNet, kEfficientNet, kConvNeXt };

inline Family family(const std::string& name) {
  if (name.rfind("resnet", 0) == 0) return Family::kResNet;
  if (name.rfind("mobilenet", 0) == 0) return Family::kMobileNet;
  if (name.rfind("efficientnet", 0) == 0) return Family::kEfficientNet;
  return Family::kConvNeXt;
}

inline std::string shape_text(const at::Tensor& t) {
  std::vector<int64_t> s(t.sizes().begin() + 1, t.sizes().end());
  return fmt::format("[B, {}]", fmt::join(s, ", "));
}


/// What runs after a stage's layer (or alone, for a stage without one).
enum class After { kNone, kRelu, kMaxPool, kPool, kPoolFlatten, kPoolFlattenDropout, kHardswishDropout, kFlatten };

}  // namespace birdplane::nn::backbone

namespace birdplane::nn {

// The network: top-level stages in order (name, module, what runs after it), the head last. The
// modules are registered on the Backbone itself (`owner`), so keys carry no prefix.
struct Backbone::Net {
  using Layer = backbone::Layer;
  using After = backbone::After;
  struct Stage {
    std::string name;
    std::shared_ptr<Layer> layer;  // null for parameterless steps (pooling)
    After then = After::kNone;     // what runs after the layer
    std::string description;
  };
  torch::nn::Module* owner = nullptr;
  std::vector<Stage> stages;
  double dropout = 0.0;
  std::string head;

  bool training() const { return owner->is_training(); }
  at::Tensor run(const at::Tensor& x, std::vector<LayerRow>* rows) {
    at::Tensor out = x;
    for (auto& s : stages) {
      if (s.layer) out = s.layer->forward(out);
      out = after(s.then, out);
      if (rows)
        rows->push_back({s.name, s.description, backbone::shape_text(out), s.layer ? count_parameters(*s.layer) : 0});
    }
    return out;
  }
  // The parameterless steps between stages (the dropouts are identities in eval mode, and in ONNX).
  at::Tensor after(After a, const at::Tensor& x) const {
    switch (a) {
      case After::kNone: return x;
      case After::kRelu: return torch::relu(x);
      case After::kMaxPool: return torch::max_pool2d(x, 3, 2, 1);
      case After::kPool: return torch::adaptive_avg_pool2d(x, {1, 1});
      case After::kPoolFlatten: return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
      case After::kPoolFlattenDropout:
        return torch::dropout(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1), dropout, training());
      case After::kHardswishDropout: return torch::dropout(torch::hardswish(x), dropout, training());
      case After::kFlatten: return x.flatten(1);
    }
    return x;
  }
  template <typename T>
  std::shared_ptr<T> add(const std::string& name, std::shared_ptr<T> layer, std::string description,
                         After then = After::kNone) {
    // Names with a dot ("features.3") live in a container module of their own ("features").
    const auto dot = name.find('.');
    if (dot == std::string::npos) {
      owner->register_module(name, layer);
    } else {
      const std::string parent = name.substr(0, dot);
      auto children = owner->named_children();
      auto container = children.contains(parent) ? children[parent]
                                                 : owner->register_module(parent, std::make_shared<torch::nn::Module>());
      container->register_module(name.substr(dot + 1), layer);
    }
    stages.push_back({name, layer, std::move(then), std::move(description)});
    return layer;
  }
  void step(const std::string& name, std::string description, After f) {
    stages.push_back({name, nullptr, f, std::move(description)});
  }
  // The stage a key or stage name belongs to: "classifier" for every part of the classifier.
  static std::string stage_of(const std::string& name) {
    return name.rfind("classifier", 0) == 0 ? "classifier" : name;
  }
};

}  // namespace birdplane::nn
