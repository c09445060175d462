// One model interface for every classifier birdplane trains, evaluates, saves, exports and
// summarizes, and a registry of named presets (`--model`). The trainer and the checkpoints see only
// this interface, so a new family of models (the chapter-8 convnets) is a new preset, not a change
// to them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "birdplane/nn/losses.h"

namespace birdplane::train {
class FusedStep;
struct StepSetup;
}  // namespace birdplane::train

namespace birdplane::nn {

/// The nonlinearity between layers.
enum class Activation { kTanh, kRelu };
inline constexpr Activation kActivations[] = {Activation::kTanh, Activation::kRelu};
std::string to_string(Activation activation);
/// "tanh" or "relu"; any other text is a SettingError for "activation".
Activation parse_activation(const std::string& text);

/// What the registry builds a model from: a preset name and the settings it reads. Saved in every
/// checkpoint, so a model file rebuilds its own network.
struct ModelSpec {
  std::string name = "book-small";                 ///< a registered preset (model_names())
  int64_t num_classes = 2;                          ///< outputs, one per class
  std::vector<int64_t> image_shape = {3, 32, 32};  ///< {C, H, W} of the images it takes
  std::vector<int64_t> hidden;                     ///< MLPs: hidden widths instead of the preset's
  Activation activation = Activation::kTanh;       ///< MLPs: between the linear layers
  int64_t channels = 32;                           ///< convnets (net-width and after): first-layer channels
  int64_t blocks = 10;                             ///< net-res-deep: residual blocks
  /// net-res-deep: one block applied `blocks` times, its weights and batch-norm statistics shared (the
  /// book's code as printed); false: a block of its own at each depth (the authors' correction).
  bool shared_blocks = true;
  double dropout = -1;           ///< torchvision's networks: dropout before the last layer (below 0: theirs)
  double stochastic_depth = -1;  ///< torchvision's networks: deepest block's drop probability (below 0: theirs)

  nlohmann::json to_json() const;
  /// Reads what to_json wrote; also the model section of checkpoints from birdplane 0.1.
  static ModelSpec from_json(const nlohmann::json& j);
};

/// One row of a model's summary table: index ("" for the input row), layer, output shape, parameters.
struct LayerRow {
  std::string index;
  std::string layer;
  std::string output;
  int64_t parameters = 0;
};

/// A classifier: float images [B,C,H,W] (normalized) in, one score per class out. Its state_dict
/// keys are those of the Python model it mirrors, so `export` files load there.
class Classifier : public torch::nn::Module {
 public:
  /// The scores before any final softmax: float [B, num_classes].
  virtual at::Tensor logits(const at::Tensor& images) = 0;
  /// Whether the model's output ends in LogSoftmax (the book's small MLP), so forward() returns
  /// log-probabilities; otherwise forward() returns the logits.
  virtual bool ends_in_log_softmax() const { return false; }
  /// The layers with their output shapes and parameter counts, the input first.
  virtual std::vector<LayerRow> layer_rows() const = 0;

  /// The state_dict as Python's model has it, in order: every parameter and buffer under its key.
  /// By default named_parameters() then named_buffers(); a model whose Python twin registers one module
  /// under several names (the book's NetResDeep) lists each alias, sharing the same tensors.
  virtual std::vector<std::pair<std::string, at::Tensor>> state_dict() const;

  /// Why this model offers no fused training step (train/step.h) for `setup`, or "" when it does.
  /// The default: none (MLPs and the convnets net and net-width offer one).
  virtual std::string fused_step_unsupported(const train::StepSetup& setup) const;
  /// The model's fused step for a setup fused_step_unsupported accepts (an Error otherwise). It holds
  /// references to this model's parameters and updates them in place.
  virtual std::unique_ptr<train::FusedStep> make_fused_step(const train::StepSetup& setup);

  /// logits(), followed by log_softmax over the classes when ends_in_log_softmax().
  at::Tensor forward(const at::Tensor& images);
  const ModelSpec& spec() const { return spec_; }

 protected:
  explicit Classifier(ModelSpec spec) : spec_(std::move(spec)) {}

 private:
  ModelSpec spec_;
};

using ClassifierPtr = std::shared_ptr<Classifier>;

/// A named model in the registry.
struct ModelPreset {
  std::string name;
  std::string description;  ///< one line, for --help and `birdplane model`
  std::function<ClassifierPtr(const ModelSpec&)> make;
};

/// The presets, in the order they were registered (book-small, book-large, mlp first).
const std::vector<ModelPreset>& model_presets();
/// Their names, for help texts and errors.
std::vector<std::string> model_names();
/// Adds a preset (a program's own model); a name already taken is an Error.
void register_model(ModelPreset preset);

/// Builds spec.name from the registry with LibTorch's default initialization (seed it first with
/// torch::manual_seed for reproducible weights). An unknown name is a SettingError for "model" that
/// lists the presets; fewer than 2 classes a SettingError for "classes".
ClassifierPtr make_model(const ModelSpec& spec);

/// The loss that fits the model's output: nll after LogSoftmax, cross-entropy on logits.
LossKind natural_loss(const Classifier& model);

/// Total number of parameters (the book's sum of numel()).
int64_t count_parameters(const torch::nn::Module& model);

/// The summary table of `birdplane model --summary`: layers, output shapes, parameter counts, the
/// total and the loss that fits.
std::string summary(const Classifier& model);

}  // namespace birdplane::nn
