// Fully connected classifiers: the book's two models (presets book-small and book-large) and any MLP
// in between (preset mlp with hidden widths).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/modules/linear.h>

#include "birdplane/nn/model.h"

namespace birdplane::nn {

/// The shape of an MLP. The state_dict keys follow the book's nn.Sequential numbering (a linear
/// layer, then its activation, ...), so they are 0.weight, 0.bias, 2.weight, ...
struct MlpOptions {
  int64_t in_features = 3072;                 ///< C x H x W (3 x 32 x 32)
  std::vector<int64_t> hidden = {512};         ///< hidden layer widths
  int64_t out_features = 2;                   ///< number of classes
  Activation activation = Activation::kTanh;  ///< between linear layers
  bool log_softmax = true;                    ///< end with LogSoftmax(dim=1) (pairs with the nll loss)
};

/// The MLP options a preset gives for `spec`: "book-small" and "mlp" (3072-512-K, Tanh, LogSoftmax;
/// 1,574,402 parameters for 2 classes), "book-large" (3072-1024-512-128-K, Tanh, logits; 3,737,474).
/// spec.hidden, when not empty, replaces the hidden widths. An unknown name is a SettingError.
MlpOptions mlp_options(const ModelSpec& spec);

/// Parses "1024,512" style lists of positive widths (a SettingError for "hidden" otherwise).
std::vector<int64_t> parse_hidden(const std::string& text);

/// A fully connected network: images flattened, then linear layers with the activation between them.
class Mlp : public Classifier {
 public:
  Mlp(ModelSpec spec, MlpOptions options);

  at::Tensor logits(const at::Tensor& images) override;
  bool ends_in_log_softmax() const override { return options_.log_softmax; }
  std::vector<LayerRow> layer_rows() const override;
  /// The fused step (train/step.h): plain SGD on the CPU, float32 or bfloat16.
  std::string fused_step_unsupported(const train::StepSetup& setup) const override;
  std::unique_ptr<train::FusedStep> make_fused_step(const train::StepSetup& setup) override;

  const MlpOptions& options() const { return options_; }
  /// The linear layers, input first (the fused step updates their weights in place).
  const std::vector<torch::nn::Linear>& linears() const { return linears_; }

 private:
  MlpOptions options_;
  std::vector<torch::nn::Linear> linears_;
};

/// Builds an MLP straight from options (tests, benchmarks); presets go through make_model.
std::shared_ptr<Mlp> make_mlp(const MlpOptions& options);

}  // namespace birdplane::nn
