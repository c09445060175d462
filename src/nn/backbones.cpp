#include "birdplane/nn/backbones.h"

#include <cmath>
#include <filesystem>
#include <functional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/text.h"

// The layers are our own small modules rather than torch::nn's, so that each registers its tensors
// directly under the names torchvision's do (Conv2dNormActivation is an nn.Sequential: its conv is
// "0" and its norm "1", with no wrapper level between), and parameterless layers (activations,
// Permute, Flatten) leave the gaps in the numbering that they leave in torchvision's.
// Sources matched: torchvision 0.14 models/resnet.py, mobilenetv3.py, efficientnet.py, convnext.py
// and ops/misc.py (Conv2dNormActivation, SqueezeExcitation), ops/stochastic_depth.py.

namespace birdplane::nn {
namespace {

enum class Act { kNone, kRelu, kHardswish, kSilu, kGelu };

at::Tensor activate(const at::Tensor& x, Act a) {
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
at::Tensor stochastic_depth(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  size[0] = x.size(0);
  auto noise = torch::empty(size, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

// --- ResNet -------------------------------------------------------------------------------------

std::shared_ptr<Stack> downsample(int64_t in, int64_t out, int64_t stride) {
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
int64_t make_divisible(double v, int64_t divisor = 8) {
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
void trunc_normal(at::Tensor& t, double std, double a = -2.0, double b = 2.0) {
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = cdf(a / std), u = cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}

enum class Family { kResNet, kMobileNet, kEfficientNet, kConvNeXt };

Family family(const std::string& name) {
  if (name.rfind("resnet", 0) == 0) return Family::kResNet;
  if (name.rfind("mobilenet", 0) == 0) return Family::kMobileNet;
  if (name.rfind("efficientnet", 0) == 0) return Family::kEfficientNet;
  return Family::kConvNeXt;
}

std::string shape_text(const at::Tensor& t) {
  std::vector<int64_t> s(t.sizes().begin() + 1, t.sizes().end());
  return fmt::format("[B, {}]", fmt::join(s, ", "));
}

}  // namespace

// The network: top-level stages in order (name, module, what runs after it), the head last. The
// modules are registered on the Backbone itself (`owner`), so keys carry no prefix.
struct Backbone::Net {
  struct Stage {
    std::string name;
    std::shared_ptr<Layer> layer;                        // null for parameterless steps (pooling)
    std::function<at::Tensor(const at::Tensor&)> then;  // runs after the layer (activation, pooling)
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
      if (s.then) out = s.then(out);
      if (rows) rows->push_back({s.name, s.description, shape_text(out), s.layer ? count_parameters(*s.layer) : 0});
    }
    return out;
  }
  template <typename T>
  std::shared_ptr<T> add(const std::string& name, std::shared_ptr<T> layer, std::string description,
                         std::function<at::Tensor(const at::Tensor&)> then = nullptr) {
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
  void step(const std::string& name, std::string description, std::function<at::Tensor(const at::Tensor&)> f) {
    stages.push_back({name, nullptr, std::move(f), std::move(description)});
  }
  // The stage a key or stage name belongs to: "classifier" for every part of the classifier.
  static std::string stage_of(const std::string& name) {
    return name.rfind("classifier", 0) == 0 ? "classifier" : name;
  }
};

namespace {

const std::vector<std::string> kNames = {"resnet18",           "resnet34",        "resnet50",     "mobilenet_v3_small",
                                         "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"};

at::Tensor flatten_pool(const at::Tensor& x) { return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1); }

void build_resnet(Backbone::Net& net, const std::string& name, int64_t classes) {
  const bool bottleneck = name == "resnet50";
  const std::vector<int64_t> blocks = name == "resnet18" ? std::vector<int64_t>{2, 2, 2, 2} : std::vector<int64_t>{3, 4, 6, 3};
  net.add("conv1", std::make_shared<Conv>(3, 64, 7, 2, 3, 1, false), "Conv2d(3, 64, 7, stride 2, padding 3, bias=False)");
  net.add("bn1", std::make_shared<BatchNorm>(64, 1e-5, 0.1), "BatchNorm2d(64), ReLU",
          [](const at::Tensor& x) { return torch::relu(x); });
  net.step("maxpool", "MaxPool2d(3, stride 2, padding 1)",
           [](const at::Tensor& x) { return torch::max_pool2d(x, 3, 2, 1); });
  int64_t in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = 64 << stage;
    auto layer = std::make_shared<Stack>();
    for (int64_t b = 0; b < blocks[static_cast<size_t>(stage)]; ++b) {
      layer->add(std::make_shared<ResBlock>(bottleneck, in, width, b == 0 && stage > 0 ? 2 : 1));
      in = bottleneck ? width * 4 : width;
    }
    net.add(fmt::format("layer{}", stage + 1), layer,
            fmt::format("{} x {}({})", blocks[static_cast<size_t>(stage)], bottleneck ? "Bottleneck" : "BasicBlock", width));
  }
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten", flatten_pool);
  net.add("fc", std::make_shared<Linear>(in, classes), fmt::format("Linear({}, {})", in, classes));
  net.head = "fc";
  // torchvision: Kaiming normal (fan_out, ReLU) for the convolutions; batch norms 1 and 0; fc as nn.Linear.
  torch::NoGradGuard no_grad;
  for (auto& m : net.owner->modules(false))
    if (auto* c = dynamic_cast<Conv*>(m.get())) torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
}

// MobileNet V3's and EfficientNet's initialization: Kaiming normal (fan_out) for every convolution, zero
// biases, batch norms 1 and 0 (as built), and `linear` for the weights of the linear layers.
void init_fan_out(Backbone::Net& net, const std::function<void(Linear&)>& linear) {
  torch::NoGradGuard no_grad;
  for (auto& m : net.owner->modules(false)) {
    if (auto* c = dynamic_cast<Conv*>(m.get())) {
      torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* l = dynamic_cast<Linear*>(m.get())) {
      linear(*l);
      l->bias.zero_();
    }
  }
}

struct MobileRow {
  int64_t in, k, expanded, out;
  bool se, hardswish;
  int64_t stride;
};

void build_mobilenet(Backbone::Net& net, const std::string& name, int64_t classes) {
  const bool large = name == "mobilenet_v3_large";
  // torchvision's _mobilenet_v3_conf (width 1.0, no reduced tail, no dilation).
  const std::vector<MobileRow> rows = large
      ? std::vector<MobileRow>{{16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},
                               {24, 3, 72, 24, false, false, 1},  {24, 5, 72, 40, true, false, 2},
                               {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
                               {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},
                               {80, 3, 184, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
                               {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
                               {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1},
                               {160, 5, 960, 160, true, true, 1}}
      : std::vector<MobileRow>{{16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
                               {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
                               {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
                               {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
                               {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
                               {96, 5, 576, 96, true, true, 1}};
  const int64_t last_channel = large ? 1280 : 1024;
  const BnSettings bn{0.001, 0.01};
  net.add("features.0", std::make_shared<ConvNormAct>(3, 16, 3, 2, 1, Act::kHardswish, bn),
          "Conv2d(3, 16, 3, stride 2), BatchNorm2d, Hardswish");
  int i = 1;
  for (const auto& r : rows) {
    const Act act = r.hardswish ? Act::kHardswish : Act::kRelu;
    net.add(fmt::format("features.{}", i++),
            std::make_shared<InvertedResidual>(r.in, r.k, r.expanded, r.out, r.stride, act,
                                               r.se ? make_divisible(r.expanded / 4) : 0, true, bn, 0.0),
            fmt::format("InvertedResidual({}, {}, k{}, stride {}{}{})", r.in, r.out, r.k, r.stride, r.se ? ", SE" : "",
                        r.hardswish ? ", Hardswish" : ", ReLU"));
  }
  const int64_t last = rows.back().out * 6;
  net.add(fmt::format("features.{}", i), std::make_shared<ConvNormAct>(rows.back().out, last, 1, 1, 1, Act::kHardswish, bn),
          fmt::format("Conv2d({}, {}, 1), BatchNorm2d, Hardswish", rows.back().out, last));
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten", flatten_pool);
  net.add("classifier.0", std::make_shared<Linear>(last, last_channel),
                             fmt::format("Linear({}, {}), Hardswish, Dropout", last, last_channel),
          [&net](const at::Tensor& x) { return torch::dropout(torch::hardswish(x), net.dropout, net.training()); });
  net.add("classifier.3", std::make_shared<Linear>(last_channel, classes),
          fmt::format("Linear({}, {})", last_channel, classes));
  net.head = "classifier.3";
  // torchvision: the linear layers normal(0, 0.01).
  init_fan_out(net, [](Linear& l) { l.weight.normal_(0, 0.01); });
}

void build_efficientnet(Backbone::Net& net, int64_t classes, double stochastic_depth_prob) {
  // torchvision's B0 table: expand ratio, kernel, stride, in, out, layers.
  struct Row { int64_t expand, k, stride, in, out, layers; };
  const std::vector<Row> rows = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2}, {6, 3, 2, 40, 80, 3},
                                 {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}};
  const BnSettings bn{1e-5, 0.1};
  net.add("features.0", std::make_shared<ConvNormAct>(3, 32, 3, 2, 1, Act::kSilu, bn),
          "Conv2d(3, 32, 3, stride 2), BatchNorm2d, SiLU");
  int64_t total = 0, id = 0;
  for (const auto& r : rows) total += r.layers;
  int i = 1;
  for (const auto& r : rows) {
    auto stage = std::make_shared<Stack>();
    for (int64_t b = 0; b < r.layers; ++b) {
      const int64_t in = b == 0 ? r.in : r.out;
      const double drop = stochastic_depth_prob * static_cast<double>(id++) / static_cast<double>(total);
      stage->add(std::make_shared<InvertedResidual>(in, r.k, make_divisible(static_cast<double>(in * r.expand)), r.out,
                                                    b == 0 ? r.stride : 1, Act::kSilu, std::max<int64_t>(1, in / 4),
                                                    false, bn, drop));
    }
    net.add(fmt::format("features.{}", i++), stage,
            fmt::format("{} x MBConv({}, {}, expand {}, k{}, stride {})", r.layers, r.in, r.out, r.expand, r.k, r.stride));
  }
  net.add(fmt::format("features.{}", i), std::make_shared<ConvNormAct>(320, 1280, 1, 1, 1, Act::kSilu, bn),
          "Conv2d(320, 1280, 1), BatchNorm2d, SiLU");
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten, Dropout", [&net](const at::Tensor& x) {
    return torch::dropout(flatten_pool(x), net.dropout, net.training());
  });
  net.add("classifier.1", std::make_shared<Linear>(1280, classes), fmt::format("Linear(1280, {})", classes));
  net.head = "classifier.1";
  // torchvision: the linear layers uniform within 1 / sqrt(outputs).
  init_fan_out(net, [](Linear& l) {
    const double range = 1.0 / std::sqrt(static_cast<double>(l.weight.size(0)));
    l.weight.uniform_(-range, range);
  });
}

void build_convnext(Backbone::Net& net, int64_t classes, double stochastic_depth_prob) {
  // convnext_tiny: widths 96, 192, 384, 768; blocks 3, 3, 9, 3.
  const std::vector<int64_t> widths = {96, 192, 384, 768}, blocks = {3, 3, 9, 3};
  net.add("features.0", std::make_shared<ConvNormAct>(3, 96, 4), "Conv2d(3, 96, 4, stride 4), LayerNorm2d");
  const double total = 18.0;
  int64_t id = 0;
  int i = 1;
  for (size_t s = 0; s < widths.size(); ++s) {
    auto stage = std::make_shared<Stack>();
    for (int64_t b = 0; b < blocks[s]; ++b)
      stage->add(std::make_shared<CNBlock>(widths[s], stochastic_depth_prob * static_cast<double>(id++) / (total - 1.0)));
    net.add(fmt::format("features.{}", i++), stage, fmt::format("{} x CNBlock({})", blocks[s], widths[s]));
    if (s + 1 < widths.size()) {
      auto down = std::make_shared<Stack>();
      down->add(std::make_shared<LayerNorm>(widths[s], true));
      down->add(std::make_shared<Conv>(widths[s], widths[s + 1], 2, 2, 0, 1, true));
      net.add(fmt::format("features.{}", i++), down,
              fmt::format("LayerNorm2d, Conv2d({}, {}, 2, stride 2)", widths[s], widths[s + 1]));
    }
  }
  net.step("avgpool", "AdaptiveAvgPool2d(1)", [](const at::Tensor& x) { return torch::adaptive_avg_pool2d(x, {1, 1}); });
  net.add("classifier.0", std::make_shared<LayerNorm>(768, true), "LayerNorm2d(768), flatten",
          [](const at::Tensor& x) { return x.flatten(1); });
  net.add("classifier.2", std::make_shared<Linear>(768, classes), fmt::format("Linear(768, {})", classes));
  net.head = "classifier.2";
  torch::NoGradGuard no_grad;
  for (auto& m : net.owner->modules(false)) {
    at::Tensor w, b;
    if (auto* c = dynamic_cast<Conv*>(m.get())) w = c->weight, b = c->bias;
    if (auto* l = dynamic_cast<Linear*>(m.get())) w = l->weight, b = l->bias;
    if (!w.defined()) continue;
    trunc_normal(w, 0.02);
    if (b.defined()) b.zero_();
  }
}

}  // namespace

const std::vector<std::string>& backbone_names() { return kNames; }

bool is_backbone(const std::string& name) { return std::find(kNames.begin(), kNames.end(), name) != kNames.end(); }

std::string backbone_head(const std::string& model) {
  switch (family(model)) {
    case Family::kResNet: return "fc";
    case Family::kMobileNet: return "classifier.3";
    case Family::kEfficientNet: return "classifier.1";
    case Family::kConvNeXt: return "classifier.2";
  }
  return "";
}

Preprocessing weights_preprocessing(const std::string& model, const std::string& weights_file) {
  // The ImageClassification arguments of torchvision 0.14's weights entries, by published file name.
  struct Known { const char* file; int64_t resize; const char* interpolation; };
  static const Known kKnown[] = {
      {"resnet50-11ad3fa6.pth", 232, "bilinear"},           {"mobilenet_v3_large-5c1a4163.pth", 232, "bilinear"},
      {"efficientnet_b0_rwightman-3dd342df.pth", 256, "bicubic"}, {"convnext_tiny-983f1562.pth", 236, "bilinear"}};
  Preprocessing p;
  const std::string file = std::filesystem::path(weights_file).filename().string();
  for (const auto& k : kKnown) {
    if (file == k.file) {
      p.resize = k.resize;
      p.interpolation = k.interpolation;
      return p;
    }
  }
  // Each architecture's first ImageNet weights (IMAGENET1K_V1).
  if (model == "efficientnet_b0") p.interpolation = "bicubic";
  if (model == "convnext_tiny") p.resize = 236;
  return p;
}

Backbone::Backbone(ModelSpec spec_in) : Classifier(std::move(spec_in)), net_(std::make_shared<Net>()) {
  const auto& s = spec();
  if (!is_backbone(s.name)) fail_setting("model", "'{}' is not one of torchvision's architectures ({})", s.name, join(kNames));
  BIRDPLANE_CHECK_SETTING(s.image_shape.size() == 3 && s.image_shape[0] == 3 && s.image_shape[1] >= 32 &&
                              s.image_shape[2] >= 32,
                          "model", "{} takes RGB images of at least 32x32 ([3, H, W]), not [{}]", s.name,
                          fmt::join(s.image_shape, ", "));
  BIRDPLANE_CHECK_SETTING(s.dropout < 1.0, "dropout", "{} is not allowed; expected 0 to below 1", s.dropout);
  BIRDPLANE_CHECK_SETTING(s.stochastic_depth < 1.0, "stochastic_depth", "{} is not allowed; expected 0 to below 1",
                          s.stochastic_depth);
  const Family f = family(s.name);
  // torchvision's defaults: dropout 0.2 before MobileNet's and EfficientNet's last layer; stochastic
  // depth 0.2 (EfficientNet-B0) and 0.1 (ConvNeXt-Tiny) at the deepest block.
  net_->dropout = s.dropout >= 0 ? s.dropout : (f == Family::kMobileNet || f == Family::kEfficientNet ? 0.2 : 0.0);
  const double sd = s.stochastic_depth >= 0 ? s.stochastic_depth : (f == Family::kEfficientNet ? 0.2 : 0.1);
  net_->owner = this;
  switch (f) {
    case Family::kResNet: build_resnet(*net_, s.name, s.num_classes); break;
    case Family::kMobileNet: build_mobilenet(*net_, s.name, s.num_classes); break;
    case Family::kEfficientNet: build_efficientnet(*net_, s.num_classes, sd); break;
    case Family::kConvNeXt: build_convnext(*net_, s.num_classes, sd); break;
  }
}

at::Tensor Backbone::logits(const at::Tensor& images) { return net_->run(images, nullptr); }

std::vector<LayerRow> Backbone::layer_rows() const {
  const auto& s = spec();
  std::vector<LayerRow> rows;
  rows.push_back({"", "input", fmt::format("[B, {}]", fmt::join(s.image_shape, ", ")), 0});
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  auto& self = const_cast<Backbone&>(*this);
  self.eval();
  net_->run(torch::zeros({1, s.image_shape[0], s.image_shape[1], s.image_shape[2]}), &rows);
  self.train(was_training);
  return rows;
}

std::vector<std::pair<std::string, at::Tensor>> Backbone::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& m : named_modules("", true)) {
    const std::string prefix = m.key().empty() ? "" : m.key() + ".";
    for (const auto& p : m.value()->named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : m.value()->named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

std::string Backbone::fused_step_unsupported(const train::StepSetup&) const {
  return fmt::format("it implements MLPs, net and net-width only, not {}", spec().name);
}

std::vector<std::string> Backbone::stages() const {
  std::vector<std::string> names;
  for (const auto& s : net_->stages) {
    if (!s.layer) continue;
    const std::string top = Net::stage_of(s.name);
    if (names.empty() || names.back() != top) names.push_back(top);
  }
  return names;
}

void Backbone::freeze(const std::string& upto) {
  const auto names = stages();
  // The stages before the head's ("fc" or "classifier") may be frozen; "backbone" is all of them.
  const std::vector<std::string> body(names.begin(), names.end() - 1);
  size_t count = 0;  // how many stages from the start are frozen
  if (upto == "backbone") {
    count = body.size();
  } else if (!upto.empty()) {
    auto it = std::find(body.begin(), body.end(), upto);
    if (it == body.end())
      fail_setting("freeze", "'{}' is not a stage of {} before its head; expected backbone or one of {}", upto,
                   spec().name, join(body));
    count = static_cast<size_t>(it - body.begin()) + 1;
  }
  frozen_ = upto;
  std::vector<std::string> prefixes(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(count));
  for (auto& p : named_parameters(true)) {
    bool frozen = false;
    for (const auto& prefix : prefixes) frozen = frozen || p.key().rfind(prefix + ".", 0) == 0;
    p.value().set_requires_grad(!frozen);
  }
  train(is_training());
}

void Backbone::train(bool on) {
  torch::nn::Module::train(on);
  if (!on || frozen_.empty()) return;
  // A batch norm whose weight no longer trains keeps its running statistics (fine-tuning's frozen BN).
  for (auto& m : modules(false))
    if (auto* bn = dynamic_cast<BatchNorm*>(m.get()))
      if (!bn->weight.requires_grad()) bn->eval();
}

}  // namespace birdplane::nn
