// Checkpoints (model, optimizer, epoch, settings) written atomically, and the bridge to Python:
// export as a state_dict that torch.load() and the book's model classes accept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "birdplane/check.h"
#include "birdplane/path_error.h"
#include "birdplane/data/image_io.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/settings.h"

namespace birdplane::train {

/// What a model file carries besides weights, so eval and predict need nothing else: the model's spec
/// (the registry rebuilds the network from it), the loss, the class names (in label order) and the
/// Thrown where a birdplane checkpoint (checkpoint.pt, model.pt) was expected and the file holds weights
/// only: a state_dict written by export_state_dict or Python's torch.save (import_state_dict reads those).
class StateDictNotCheckpointError : public PathError {
 public:
  using PathError::PathError;
};

/// normalization constants, and how a new image is brought to the model's size (spec.image_shape).
struct ModelConfig {
  nn::ModelSpec spec;
  nn::LossKind loss = nn::LossKind::kNll;
  std::vector<std::string> classes;
  std::vector<double> mean, std;
  data::CropMode crop = data::CropMode::kNone;  ///< as the training images were (--crop)
  Tta tta = Tta::kNone;  ///< the test-time augmentation eval and predict use (TrainingSpec::tta)
  /// Pretrained weights' preprocessing (nn::weights_preprocessing): a new image's shorter side is resized
  /// to `resize` with `interpolation`, then centre-cropped to the model's size. 0: as `crop` says.
  int64_t resize = 0;
  std::string interpolation = "bilinear";

  nlohmann::json to_json() const;
  /// Reads what to_json wrote, and the model section of birdplane 0.1 files.
  static ModelConfig from_json(const nlohmann::json& j);
};

/// Saves model weights (buffers too), the model config, and when given the optimizer state, the
/// completed epoch count, the run's full settings (`run_config`, JSON) and what else the trainer needs
/// to resume (`trainer_state`: the learning-rate schedule's state, the best validation; `averaged`: the
/// weight average's model) into one file, atomically.
void save_checkpoint(const std::string& path, const ModelConfig& config, const nn::Classifier& model,
                     const torch::optim::Optimizer* optimizer = nullptr, int64_t epoch = 0,
                     const nlohmann::json& run_config = nlohmann::json::object(),
                     const nlohmann::json& trainer_state = nlohmann::json::object(),
                     const nn::Classifier* averaged = nullptr);

/// A loaded checkpoint: the model rebuilt from its spec with the saved weights.
struct Checkpoint {
  ModelConfig config;
  nn::ClassifierPtr model;
  int64_t epoch = 0;
  nlohmann::json run_config;
  nlohmann::json trainer_state = nlohmann::json::object();  ///< {} in files without one
  nn::ClassifierPtr averaged;  ///< the weight average (TrainingSpec::ema_decay), when the file has one
};

/// Loads a checkpoint written by save_checkpoint (also by birdplane 0.1). A missing, truncated or
/// foreign file, or weights whose shapes do not match the spec, is an Error naming the file.
Checkpoint load_checkpoint(const std::string& path);

/// Restores the optimizer state saved in the checkpoint at `path` (for resuming).
void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer);

/// Writes model.state_dict() as a pickled dict of tensors (for the MLPs: keys 0.weight, 0.bias,
/// 2.weight, ...) that Python's torch.load() reads and the book's model's load_state_dict() accepts.
void export_state_dict(const std::string& path, const nn::Classifier& model);

/// Reads such a file (or one written by Python's torch.save(model.state_dict()), an OrderedDict) into
/// `model`. Missing or extra keys, shape and dtype mismatches are one Error listing each key and both
/// shapes; only a missing num_batches_tracked (files from before PyTorch 0.4.1) is allowed and stays 0.
void import_state_dict(const std::string& path, nn::Classifier& model);

/// What load_pretrained did.
struct PretrainedLoad {
  int64_t tensors = 0;         ///< tensors copied from the file
  bool head_replaced = false;  ///< the file's head had another shape and was left as initialized
  int64_t file_classes = 0;    ///< the file's number of outputs, when the head was replaced
};

/// Pretrained weights (torchvision's published files, e.g. resnet18-f37072fd.pth) into `model`, as
/// import_state_dict, except that when the file's `head` layer (nn::backbone_head: "fc", "classifier.3",
/// ...) has another shape (another number of classes), the model keeps its freshly initialized head.
PretrainedLoad load_pretrained(const std::string& path, nn::Classifier& model, const std::string& head);

}  // namespace birdplane::train
