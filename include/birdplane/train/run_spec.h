// The run specification: every setting of a training run in one place, in three parts (the data,
// the model, the training) plus where the run folder goes. One JSON form, config.json's "run".
//   train::RunSpec spec;
//   spec.data.image_folder = "photos"; spec.data.val_fraction = 0.2;
//   spec.model.name = "net-width";
//   spec.training.epochs = 20;
//   auto run = train::Run::start(spec);   // train/run.h
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "birdplane/data/data_spec.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/mixing.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/schedule.h"
#include "birdplane/train/settings.h"

namespace birdplane::train {

/// Fine-tuning in two phases, as one setting: for the first head_epochs epochs only the head trains (the
/// backbone frozen, its batch norms in eval mode); then everything trains (but what `freeze` names), at
/// lr_factor times the learning rate the schedule gives.
struct FineTune {
  int64_t head_epochs = 0;  ///< 0: off
  double lr_factor = 0.1;
  nlohmann::json to_json() const { return {{"head_epochs", head_epochs}, {"lr_factor", lr_factor}}; }
};

/// How the model is trained. Setting names in errors are these field names ("batch_size", ...).
struct TrainingSpec {
  std::optional<nn::LossKind> loss;  ///< empty: the one that fits the model (nn::natural_loss)
  OptimizerConfig optimizer;
  int64_t epochs = 100;
  int64_t batch_size = 64;
  uint64_t seed = 123;                ///< initial weights, shuffles, augmentation, validation split
  bool drop_last = false;
  int64_t eval_every = 1;             ///< validation every N epochs (and after the last)
  DeviceKind device = DeviceKind::kAuto;
  std::string init_from;              ///< a state_dict file to start from ("" : the preset's initialization)
  /// Pretrained weights to start from (torchvision's published files): as init_from, except that a head
  /// of another size (another number of classes) is replaced by a freshly initialized one, and images are
  /// normalized with the weights' own mean and std (nn::weights_preprocessing), not the data's.
  std::string weights;
  /// torchvision's networks: train nothing up to this stage ("backbone": all but the classifier;
  /// "layer3", "features.6", ...: up to and including it; "": train everything). Frozen batch norms keep
  /// their running statistics.
  std::string freeze;
  FineTune fine_tune;                 ///< the head alone first, then everything at a lower rate
  std::string augment;                ///< training augmentation spec (transforms/spec.h); empty: none
  Precision precision = Precision::kFp32;
  StepKind step = StepKind::kAuto;
  ScheduleSpec schedule;              ///< the learning rate over the run (constant: the book's)
  double label_smoothing = 0.0;       ///< F.cross_entropy's label_smoothing, in [0, 1)
  /// "" (every class weighs 1), "auto" (N / (K * count) from the training images, as scikit-learn's
  /// "balanced"), or one weight per class in label order ("1,2.5")
  std::string class_weights;
  /// Draw each epoch's images so that every class comes equally often (WeightedRandomSampler with
  /// 1 / class count, with replacement) instead of a permutation.
  bool balanced_sampler = false;
  double clip_grad_norm = 0.0;        ///< > 0: clip_grad_norm_ to this total 2-norm before each update
  double clip_grad_value = 0.0;       ///< > 0: clip_grad_value_ to [-v, v] (after the norm, when both)
  /// What "best" means for best.pt and early stopping: the validation loss or accuracy.
  Monitor monitor = Monitor::kValLoss;
  /// Stop after this many validations in a row without improvement (0: never stop early).
  int64_t early_stopping = 0;
  /// An improvement is a change of the monitored figure by more than this (0: any).
  double min_delta = 0.0;
  /// model.pt holds the weights of the last epoch (false) or of best.pt (true).
  bool final_best = false;
  /// > 0: keep an exponential moving average of the weights and buffers (train/average.h) with this
  /// decay; validation, best.pt and model.pt then use the average.
  double ema_decay = 0.0;
  int64_t ema_every = 1;   ///< update the average every N steps (batches 0, N, 2N, ... of each epoch)
  int64_t ema_warmup = 0;  ///< during the first N epochs the average restarts after each update
  MixSpec mix;             ///< mixup and cutmix of training batches (off by default)
  Tta tta = Tta::kNone;    ///< test-time augmentation of validation, recorded in the model file for eval and predict

  /// Throws a SettingError naming the setting when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  /// Reads what to_json wrote; keys that are missing keep their defaults.
  static TrainingSpec from_json(const nlohmann::json& j);
};

/// The recipes --recipe names: "book" (the defaults: the book's constant-rate SGD) and "modern" (Nesterov
/// SGD with weight decay off the 1-D parameters, a warmup then cosine, label smoothing, light mixup, a
/// weight average, mirrored test-time augmentation; docs/recipe.md lists the values and the figures).
/// Sets each of the recipe's settings on `t` unless `given(setting)` says the caller set it itself
/// (setting names as in errors: "lr", "momentum", "schedule", ...). t.epochs must be final: the warmup
/// is a tenth of the run. A SettingError for "recipe" names the recipes when `recipe` is not one.
void apply_recipe(TrainingSpec& t, const std::string& recipe, const std::function<bool(const std::string&)>& given);

/// The class weights `text` (TrainingSpec::class_weights) asks for, given the training images per
/// class: an empty list for "", else one weight per class. A SettingError for "class_weights" when
/// the count differs or a class has no images under "auto".
std::vector<double> resolve_class_weights(const std::string& text, const std::vector<int64_t>& class_counts);

/// Every setting of a run. The model part is the registry's ModelSpec: its name, widths and blocks are
/// the user's; num_classes and image_shape are filled from the data when the run starts.
struct RunSpec {
  data::DataSpec data;
  nn::ModelSpec model;
  TrainingSpec training;
  std::string runs_dir = "runs";  ///< where run folders go
  std::string name;               ///< the run folder's name ("" : Run::start picks a time stamp and the model)

  /// runs_dir/name.
  std::string path() const;
  /// validate() of each part, and the model name against the registry. Throws a SettingError naming
  /// the setting.
  void validate() const;
  /// {"data": ..., "model": ..., "training": ..., "runs_dir": ..., "name": ...}
  nlohmann::json to_json() const;
  /// Reads what to_json wrote, or the flat settings object that config.json held under "train" before
  /// the specification had parts.
  static RunSpec from_json(const nlohmann::json& j);
  /// The specification recorded in a run folder's config.json (its "run" object, or the older "train").
  static RunSpec from_config(const nlohmann::json& config);
};

}  // namespace birdplane::train
