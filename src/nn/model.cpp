#include "birdplane/nn/model.h"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/backbones.h"
#include "birdplane/nn/convnets.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/speedrun_net.h"
#include "birdplane/train/step.h"
#include "common/parse_named.h"
#include "common/text.h"

namespace birdplane::nn {
namespace {

std::vector<ModelPreset>& registry() {
  // Built on first use, not by static registration objects: a static library drops object files
  // nothing refers to, and their registrations with them.
  static std::vector<ModelPreset> presets = [] {
    auto mlp = [](const ModelSpec& spec) -> ClassifierPtr { return std::make_shared<Mlp>(spec, mlp_options(spec)); };
    auto conv = [](const ModelSpec& spec) -> ClassifierPtr { return std::make_shared<ConvNet>(spec); };
    auto tv = [](const ModelSpec& spec) -> ClassifierPtr { return std::make_shared<Backbone>(spec); };
    auto speedrun = [](const ModelSpec& spec) -> ClassifierPtr { return std::make_shared<SpeedrunNet>(spec); };
    return std::vector<ModelPreset>{
        {"book-small", "the book's small MLP: 3072-512-K, Tanh, LogSoftmax (loss nll)", mlp},
        {"book-large", "the book's large MLP: 3072-1024-512-128-K, Tanh, logits (loss cross-entropy)", mlp},
        {"mlp", "an MLP with the `hidden` widths (default 512), LogSoftmax (loss nll)", mlp},
        {"net", "chapter 8's Net: conv 3-16, tanh, pool, conv 16-8, tanh, pool, fc 512-32-K", conv},
        {"net-width", "Net with `channels` first-layer channels (default 32), the second half that", conv},
        {"net-dropout", "net-width with 2-D dropout (p 0.4) after each convolution stage", conv},
        {"net-batchnorm", "net-width with batch normalization after each convolution", conv},
        {"net-depth", "three convolutions with ReLU, fc 4x4x(channels/2)-32-K", conv},
        {"net-res", "net-depth with a skip connection around the third convolution", conv},
        {"net-res-deep", "`blocks` residual blocks (conv, batch norm, ReLU, skip; one block shared, as the book's "
                         "code; `shared_blocks` false: one per depth)",
         conv},
        {"resnet18", "torchvision's ResNet-18 (11.7M parameters at 1000 classes; --weights resnet18-f37072fd.pth)", tv},
        {"resnet34", "torchvision's ResNet-34 (21.8M; resnet34-b627a593.pth)", tv},
        {"resnet50", "torchvision's ResNet-50 (25.6M; resnet50-0676ba61.pth or resnet50-11ad3fa6.pth)", tv},
        {"mobilenet_v3_small", "torchvision's MobileNet V3 small (2.5M; mobilenet_v3_small-047dcff4.pth)", tv},
        {"mobilenet_v3_large", "torchvision's MobileNet V3 large (5.5M; mobilenet_v3_large-8738ca79.pth)", tv},
        {"efficientnet_b0", "torchvision's EfficientNet-B0 (5.3M; efficientnet_b0_rwightman-3dd342df.pth)", tv},
        {"convnext_tiny", "torchvision's ConvNeXt-Tiny (28.6M; convnext_tiny-983f1562.pth)", tv},
        {"speedrun", "the CIFAR-10 speedrun's net (airbench94): whitening conv, 3 groups 64/256/256, GELU, 1.97M "
                     "parameters; `birdplane experiment speedrun` trains it with its recipe", speedrun},
    };
  }();
  return presets;
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

std::string to_string(Activation activation) { return activation == Activation::kRelu ? "relu" : "tanh"; }

Activation parse_activation(const std::string& text) { return parse_named(kActivations, text, "activation"); }

nlohmann::json ModelSpec::to_json() const {
  return {{"name", name},
          {"num_classes", num_classes},
          {"image_shape", image_shape},
          {"hidden", hidden},
          {"activation", to_string(activation)},
          {"channels", channels},
          {"blocks", blocks},
          {"shared_blocks", shared_blocks},
          {"dropout", dropout},
          {"stochastic_depth", stochastic_depth}};
}

ModelSpec ModelSpec::from_json(const nlohmann::json& j) {
  // Sizes come from files (checkpoints, config.json): whole numbers only (nlohmann converts a float
  // with a plain cast, undefined behaviour for 1e118), and within bounds, before any layer is built.
  auto whole = [&](const char* key, int64_t low, int64_t high) {
    if (!j.is_object() || !j.contains(key)) return;
    const nlohmann::json& v = j.at(key);
    const auto check = [&](const nlohmann::json& e) {
      if (!e.is_number_integer())
        fail_setting(key, "{} is not a whole number (or a list of them)", v.dump());
      const auto x = e.get<int64_t>();
      if (x < low || x > high) fail_setting(key, "{} is out of range ({} to {})", x, low, high);
    };
    if (v.is_array()) {
      if (v.size() > 64) fail_setting(key, "{} entries are too many", v.size());
      for (const auto& e : v) check(e);
    } else {
      check(v);
    }
  };
  whole("num_classes", 1, 1'000'000);
  whole("out_features", 1, 1'000'000);
  whole("image_shape", 1, int64_t{1} << 24);
  whole("in_features", 1, int64_t{1} << 32);
  whole("hidden", 1, int64_t{1} << 20);
  whole("channels", 1, 65'536);
  whole("blocks", 0, 10'000);
  ModelSpec s;
  if (j.contains("name")) {
    s.name = j.at("name").get<std::string>();
    s.num_classes = j.at("num_classes").get<int64_t>();
    s.image_shape = j.at("image_shape").get<std::vector<int64_t>>();
  } else {  // birdplane 0.1: {"model", "in_features", "hidden", "out_features", "activation", ...}
    s.name = j.at("model").get<std::string>();
    s.num_classes = j.at("out_features").get<int64_t>();
    const auto in = j.at("in_features").get<int64_t>();
    s.image_shape = in == 3072 ? std::vector<int64_t>{3, 32, 32} : std::vector<int64_t>{in};
  }
  s.hidden = j.at("hidden").get<std::vector<int64_t>>();
  s.activation = parse_activation(j.at("activation").get<std::string>());
  s.channels = j.value("channels", s.channels);
  s.blocks = j.value("blocks", s.blocks);
  if (j.contains("shared_blocks")) {
    if (!j.at("shared_blocks").is_boolean())
      fail_setting("shared_blocks", "{} is not true or false", j.at("shared_blocks").dump());
    s.shared_blocks = j.at("shared_blocks").get<bool>();
  }
  for (auto [key, field] : {std::pair<const char*, double*>{"dropout", &s.dropout}, {"stochastic_depth", &s.stochastic_depth}}) {
    if (!j.contains(key)) continue;
    if (!j.at(key).is_number()) fail_setting(key, "{} is not a number", j.at(key).dump());
    *field = j.at(key).get<double>();
    if (!(*field >= -1 && *field < 1)) fail_setting(key, "{} is out of range (0 to below 1, or -1: the network's own)", *field);
  }
  return s;
}

std::string Classifier::fused_step_unsupported(const train::StepSetup&) const {
  return fmt::format("it implements MLPs, net and net-width only, not {}", spec_.name);
}

std::unique_ptr<train::FusedStep> Classifier::make_fused_step(const train::StepSetup& setup) {
  fail("the fused step has no implementation for {}: {}", spec_.name, fused_step_unsupported(setup));
}

at::Tensor Classifier::forward(const at::Tensor& images) {
  auto z = logits(images);
  return ends_in_log_softmax() ? torch::log_softmax(z, 1) : z;
}

std::vector<std::pair<std::string, at::Tensor>> Classifier::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> entries;
  for (const auto& p : named_parameters()) entries.emplace_back(p.key(), p.value());
  for (const auto& b : named_buffers()) entries.emplace_back(b.key(), b.value());
  return entries;
}

const std::vector<ModelPreset>& model_presets() { return registry(); }

std::vector<std::string> model_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& p : registry()) names.push_back(p.name);
  return names;
}

void register_model(ModelPreset preset) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  BIRDPLANE_CHECK(!preset.name.empty() && preset.make, "register_model: a preset needs a name and a factory");
  for (const auto& p : registry())
    BIRDPLANE_CHECK(p.name != preset.name, "register_model: a model named '{}' is already registered", p.name);
  registry().push_back(std::move(preset));
}

ClassifierPtr make_model(const ModelSpec& spec) {
  BIRDPLANE_CHECK_SETTING(spec.num_classes >= 2, "classes", "a classifier needs at least 2 classes, got {}",
                          spec.num_classes);
  BIRDPLANE_CHECK(!spec.image_shape.empty() &&
                      std::all_of(spec.image_shape.begin(), spec.image_shape.end(), [](int64_t d) { return d > 0; }),
                  "model '{}': the image shape must be positive sizes, got [{}]", spec.name,
                  fmt::join(spec.image_shape, ", "));
  std::function<ClassifierPtr(const ModelSpec&)> make;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (const auto& p : registry())
      if (p.name == spec.name) make = p.make;
  }
  if (!make) fail_setting("model", "unknown model '{}'; expected one of {}", spec.name, join(model_names()));
  return make(spec);
}

LossKind natural_loss(const Classifier& model) {
  return model.ends_in_log_softmax() ? LossKind::kNll : LossKind::kCrossEntropy;
}

int64_t count_parameters(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

std::string summary(const Classifier& model) {
  const auto rows = model.layer_rows();
  // Columns at least as wide as the MLP table has always been, wider where a name needs it.
  size_t wi = 4, wl = 28, wo = 14;
  for (const auto& row : rows) {
    wi = std::max(wi, row.index.size());
    wl = std::max(wl, row.layer.size());
    wo = std::max(wo, row.output.size());
  }
  std::string s = fmt::format("{:<{}} {:<{}} {:<{}} {:>12}\n", "#", wi, "layer", wl, "output", wo, "parameters");
  for (const auto& row : rows) {
    s += fmt::format("{:<{}} {:<{}} {:<{}} {:>12}\n", row.index, wi, row.layer, wl, row.output, wo,
                     row.index.empty() ? "" : row.parameters ? fmt::format("{:L}", row.parameters) : "-");
  }
  s += fmt::format("total parameters: {}\n", count_parameters(model));
  s += fmt::format("loss that fits its output: {}\n", to_string(natural_loss(model)));
  return s;
}

}  // namespace birdplane::nn
