#include "birdplane/nn/mlp.h"

#include <sstream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::nn {

MlpOptions mlp_options(const ModelSpec& spec) {
  MlpOptions o;
  o.in_features = 1;
  for (int64_t d : spec.image_shape) o.in_features *= d;
  o.out_features = spec.num_classes;
  o.activation = spec.activation;
  if (spec.name == "book-small" || spec.name == "mlp") {
    o.hidden = {512};
    o.log_softmax = true;
  } else if (spec.name == "book-large") {
    o.hidden = {1024, 512, 128};
    o.log_softmax = false;
  } else {
    fail_setting("model", "'{}' is not an MLP preset; expected book-small, book-large or mlp", spec.name);
  }
  if (!spec.hidden.empty()) o.hidden = spec.hidden;
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
    BIRDPLANE_CHECK_SETTING(used > 0 && used == item.size() && v >= 1 && v <= (1 << 20), "hidden",
                            "'{}' is not a layer width; expected positive whole numbers separated by commas, "
                            "e.g. 1024,512",
                            item);
    out.push_back(v);
  }
  return out;
}

Mlp::Mlp(ModelSpec spec, MlpOptions options) : Classifier(std::move(spec)), options_(std::move(options)) {
  BIRDPLANE_CHECK(options_.in_features >= 1 && options_.out_features >= 1,
                  "an MLP needs positive input and output widths, got {} and {}", options_.in_features,
                  options_.out_features);
  // Registered under the index each linear layer has in the book's nn.Sequential (the activation
  // takes the odd numbers), so the parameter names are 0.weight, 0.bias, 2.weight, ...
  int64_t width = options_.in_features;
  size_t index = 0;
  for (int64_t h : options_.hidden) {
    linears_.push_back(register_module(std::to_string(index), torch::nn::Linear(width, h)));
    index += 2;
    width = h;
  }
  linears_.push_back(register_module(std::to_string(index), torch::nn::Linear(width, options_.out_features)));
}

at::Tensor Mlp::logits(const at::Tensor& images) {
  at::Tensor h = images.reshape({images.size(0), -1});
  // One image without gradients (the Predictor's single-image call): a matrix-vector product. LibTorch
  // sends a linear layer to the BLAS's matrix product even for one row, which OpenBLAS does some 5x
  // slower than its matrix-vector product (300 against 60 microseconds for book-small's first layer on
  // 2 cores); the sums are the same up to their order.
  const bool one_row = h.size(0) == 1 && !at::GradMode::is_enabled();
  for (size_t i = 0; i < linears_.size(); ++i) {
    h = one_row ? at::addmv(linears_[i]->bias, linears_[i]->weight, h[0]).unsqueeze(0) : linears_[i]->forward(h);
    if (i + 1 < linears_.size()) h = options_.activation == Activation::kTanh ? torch::tanh(h) : torch::relu(h);
  }
  return h;
}

std::vector<LayerRow> Mlp::layer_rows() const {
  std::vector<LayerRow> rows;
  const auto& shape = spec().image_shape;
  rows.push_back({"", fmt::format("input (flattened {})", fmt::join(shape, "x")),
                  fmt::format("[B, {}]", options_.in_features), 0});
  const std::string act = options_.activation == Activation::kTanh ? "Tanh()" : "ReLU()";
  size_t index = 0;
  for (size_t i = 0; i < linears_.size(); ++i) {
    const auto& o = linears_[i]->options;
    const std::string out = fmt::format("[B, {}]", o.out_features());
    rows.push_back({std::to_string(index++), fmt::format("Linear({}, {})", o.in_features(), o.out_features()), out,
                    o.in_features() * o.out_features() + (o.bias() ? o.out_features() : 0)});
    if (i + 1 < linears_.size()) rows.push_back({std::to_string(index++), act, out, 0});
  }
  if (options_.log_softmax)
    rows.push_back({std::to_string(index), "LogSoftmax(dim=1)", fmt::format("[B, {}]", options_.out_features), 0});
  return rows;
}

std::shared_ptr<Mlp> make_mlp(const MlpOptions& options) {
  ModelSpec spec;
  // A preset that rebuilds exactly this network from the spec (as checkpoints do): "mlp" ends in
  // LogSoftmax, "book-large" in logits; both take the hidden widths from the spec.
  spec.name = options.log_softmax ? "mlp" : "book-large";
  spec.num_classes = options.out_features;
  spec.image_shape = options.in_features == 3072 ? std::vector<int64_t>{3, 32, 32}
                                                 : std::vector<int64_t>{options.in_features};
  spec.hidden = options.hidden;
  spec.activation = options.activation;
  return std::make_shared<Mlp>(std::move(spec), options);
}

}  // namespace birdplane::nn
