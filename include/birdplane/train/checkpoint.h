// Checkpoints (model, optimizer, epoch, settings) written atomically, and the bridge to Python:
// export as a state_dict that torch.load() and the book's nn.Sequential accept.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/optimizer.h>

#include "birdplane/nn/mlp.h"

namespace birdplane::train {

/// What a model file carries besides weights, so eval and predict need nothing else: the network's
/// shape, the loss, the class names (in label order) and the normalization constants.
struct ModelConfig {
  std::string model_name = "book-small";
  nn::MlpOptions mlp;
  std::string loss = "nll";
  std::vector<std::string> classes;
  std::vector<double> mean, std;

  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);
};

/// Writes a file by calling `write(tmp_path)`, fsyncs it and renames it over `path`, so a crash
/// leaves either the old file or the new one, never a torn one. The folder must exist.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

/// Saves model weights, the model config, and when given the optimizer state, the completed epoch
/// count and the run's full settings (`run_config`, JSON) into one file, atomically.
void save_checkpoint(const std::string& path, const ModelConfig& config, const torch::nn::Sequential& model,
                     const torch::optim::Optimizer* optimizer = nullptr, int64_t epoch = 0,
                     const nlohmann::json& run_config = nlohmann::json::object());

/// A loaded checkpoint: a model rebuilt from its config with the saved weights.
struct Checkpoint {
  ModelConfig config;
  torch::nn::Sequential model{nullptr};
  int64_t epoch = 0;
  nlohmann::json run_config;
};

/// Loads a checkpoint written by save_checkpoint. A missing, truncated or foreign file, or
/// weights whose shapes do not match the config, is an Error naming the file.
Checkpoint load_checkpoint(const std::string& path);

/// Restores the optimizer state saved in the checkpoint at `path` (for --resume).
void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer);

/// Writes the weights as a pickled dict of tensors (keys 0.weight, 0.bias, 2.weight, ...) that
/// Python's torch.load() reads and the book's nn.Sequential.load_state_dict() accepts.
void export_state_dict(const std::string& path, const torch::nn::Sequential& model);

/// Reads such a file (or one written by Python's torch.save(model.state_dict())) into `model`.
/// Missing or extra keys and shape mismatches are Errors that name the key and both shapes.
void import_state_dict(const std::string& path, torch::nn::Sequential& model);

}  // namespace birdplane::train
