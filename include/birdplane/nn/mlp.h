// Fully connected classifiers: the book's two models and any MLP in between.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

namespace birdplane::nn {

/// The shape of an MLP. Built as a torch::nn::Sequential whose layer numbering matches the
/// book's nn.Sequential, so state_dict keys are 0.weight, 0.bias, 2.weight, ...
struct MlpOptions {
  int64_t in_features = 3072;          ///< 3 x 32 x 32
  std::vector<int64_t> hidden = {512};  ///< hidden layer widths
  int64_t out_features = 2;            ///< number of classes
  std::string activation = "tanh";     ///< "tanh" or "relu", between linear layers
  bool log_softmax = true;             ///< end with LogSoftmax(dim=1) (pairs with the nll loss)
};

/// The presets: "book-small" (3072-512-2, Tanh, LogSoftmax; 1,574,402 parameters for 2 classes)
/// and "book-large" (3072-1024-512-128-2, Tanh, logits; 3,737,474 parameters). `num_classes`
/// sets the output width.
MlpOptions preset(const std::string& name, int64_t num_classes);

/// The preset names, for help texts and errors.
const std::vector<std::string>& preset_names();

/// Parses "--hidden 1024,512" style lists of positive widths.
std::vector<int64_t> parse_hidden(const std::string& text);

/// Builds the network. Linear layers use LibTorch's default initialization (PyTorch's).
torch::nn::Sequential make_mlp(const MlpOptions& options);

/// The loss that fits the model's output: "nll" after LogSoftmax, "cross-entropy" on logits.
std::string natural_loss(const MlpOptions& options);

/// Total number of parameters (the book's sum of numel()).
int64_t count_parameters(const torch::nn::Sequential& model);

/// A table of layers, output shapes and parameter counts, like `birdplane model --summary`.
std::string summary(const MlpOptions& options);

}  // namespace birdplane::nn
