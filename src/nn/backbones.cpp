#include "birdplane/nn/backbones.h"

#include <cmath>
#include <filesystem>
#include <functional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/text.h"
#include "nn/backbone_layers.h"

// The layers and the stages: nn/backbone_layers.h.

namespace birdplane::nn {
using namespace backbone;

namespace {

const std::vector<std::string> kNames = {"resnet18",           "resnet34",        "resnet50",     "mobilenet_v3_small",
                                         "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"};

void build_resnet(Backbone::Net& net, const std::string& name, int64_t classes) {
  const bool bottleneck = name == "resnet50";
  const std::vector<int64_t> blocks = name == "resnet18" ? std::vector<int64_t>{2, 2, 2, 2} : std::vector<int64_t>{3, 4, 6, 3};
  net.add("conv1", std::make_shared<Conv>(3, 64, 7, 2, 3, 1, false), "Conv2d(3, 64, 7, stride 2, padding 3, bias=False)");
  net.add("bn1", std::make_shared<BatchNorm>(64, 1e-5, 0.1), "BatchNorm2d(64), ReLU", After::kRelu);
  net.step("maxpool", "MaxPool2d(3, stride 2, padding 1)", After::kMaxPool);
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
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten", After::kPoolFlatten);
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
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten", After::kPoolFlatten);
  net.add("classifier.0", std::make_shared<Linear>(last, last_channel),
                             fmt::format("Linear({}, {}), Hardswish, Dropout", last, last_channel),
          After::kHardswishDropout);
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
  net.step("avgpool", "AdaptiveAvgPool2d(1), flatten, Dropout", After::kPoolFlattenDropout);
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
  net.step("avgpool", "AdaptiveAvgPool2d(1)", After::kPool);
  net.add("classifier.0", std::make_shared<LayerNorm>(768, true), "LayerNorm2d(768), flatten", After::kFlatten);
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
