#include "birdplane/nn/mlp.h"

#include <sstream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::nn {

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"book-small", "book-large", "mlp"};
  return names;
}

MlpOptions preset(const std::string& name, int64_t num_classes) {
  BIRDPLANE_CHECK(num_classes >= 2, "a classifier needs at least 2 classes, got {}", num_classes);
  MlpOptions o;
  o.out_features = num_classes;
  if (name == "book-small" || name == "mlp") {
    o.hidden = {512};
    o.log_softmax = true;
  } else if (name == "book-large") {
    o.hidden = {1024, 512, 128};
    o.log_softmax = false;
  } else {
    fail("--model: unknown model '{}'; expected book-small, book-large or mlp (with --hidden)", name);
  }
  return o;
}

std::vector<int64_t> parse_hidden(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BIRDPLANE_CHECK(used > 0 && used == item.size() && v >= 1 && v <= (1 << 20),
                    "--hidden: '{}' is not a layer width; expected positive whole numbers separated "
                    "by commas, e.g. 1024,512",
                    item);
    out.push_back(v);
  }
  return out;
}

torch::nn::Sequential make_mlp(const MlpOptions& o) {
  BIRDPLANE_CHECK(o.activation == "tanh" || o.activation == "relu",
                  "--activation: '{}' is not supported; expected tanh or relu", o.activation);
  torch::nn::Sequential seq;
  int64_t width = o.in_features;
  for (int64_t h : o.hidden) {
    seq->push_back(torch::nn::Linear(width, h));
    if (o.activation == "tanh") {
      seq->push_back(torch::nn::Tanh());
    } else {
      seq->push_back(torch::nn::ReLU());
    }
    width = h;
  }
  seq->push_back(torch::nn::Linear(width, o.out_features));
  if (o.log_softmax) seq->push_back(torch::nn::LogSoftmax(1));
  return seq;
}

std::string natural_loss(const MlpOptions& o) { return o.log_softmax ? "nll" : "cross-entropy"; }

int64_t count_parameters(const torch::nn::Sequential& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

std::string summary(const MlpOptions& o) {
  auto model = make_mlp(o);
  std::string s = fmt::format("{:<4} {:<28} {:<14} {:>12}\n", "#", "layer", "output", "parameters");
  s += fmt::format("{:<4} {:<28} {:<14} {:>12}\n", "", "input (flattened 3x32x32)",
                   fmt::format("[B, {}]", o.in_features), "");
  int64_t width = o.in_features;
  size_t i = 0;
  for (const auto& named : model->named_children()) {
    auto m = named.value();
    int64_t params = 0;
    for (const auto& p : m->parameters()) params += p.numel();
    std::string name = m->name();
    if (auto* lin = m->as<torch::nn::Linear>()) {
      width = lin->options.out_features();
      name = fmt::format("Linear({}, {})", lin->options.in_features(), width);
    } else if (m->as<torch::nn::LogSoftmax>()) {
      name = "LogSoftmax(dim=1)";
    } else {
      name = name.substr(name.rfind(':') + 1);
      if (name.size() > 4 && name.substr(name.size() - 4) == "Impl") name.resize(name.size() - 4);
      name += "()";
    }
    s += fmt::format("{:<4} {:<28} {:<14} {:>12}\n", named.key(), name, fmt::format("[B, {}]", width),
                     params ? fmt::format("{:L}", params) : "-");
    ++i;
  }
  s += fmt::format("total parameters: {}\n", count_parameters(model));
  s += fmt::format("loss that fits its output: {}\n", natural_loss(o));
  return s;
}

}  // namespace birdplane::nn
