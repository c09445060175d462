// The CIFAR-10 speedrun: the `speedrun` network trained with airbench94's recipe (Keller Jordan,
// arXiv 2404.00498), written for the CPU. One call runs it: whitening initialisation from training
// patches, Nesterov SGD with the decoupled learning rate and weight decay (per 1024 images, batch-norm
// shifts at 64x the rate), label smoothing 0.2 on a summed loss, the triangular schedule, lookahead
// weight averaging every 5 steps, alternating flips and 2-pixel random translation, and test-time
// augmentation (mirror and one-pixel shifts). `birdplane experiment speedrun` is its command line;
// bench/python/speedrun.py is the same recipe for PyTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "birdplane/data/image_set.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/settings.h"
#include "birdplane/train/trainer.h"

namespace birdplane::train {

/// The recipe's settings; the defaults are airbench94's.
struct SpeedrunOptions {
  uint64_t seed = 0;
  double epochs = 9.9;          ///< fractional: the last epoch stops after its share of steps
  int64_t batch_size = 1024;    ///< the last incomplete batch of an epoch is dropped
  double lr = 11.5;             ///< per 1024 images, with the momentum's gain divided out
  double momentum = 0.85;       ///< Nesterov
  double weight_decay = 0.0153; ///< per 1024 images, independent of the learning rate
  double bias_scaler = 64;      ///< the batch-norm shifts' learning rate (not decay) multiplier
  double label_smoothing = 0.2;
  int64_t whiten_bias_epochs = 3;  ///< the whitening bias trains for this many epochs, then stays
  int64_t whiten_images = 5000;    ///< training images whose patches set the whitening filters
  int64_t translate = 2;           ///< random shifts of up to this many pixels (reflect padding)
  bool alternating_flip = true;    ///< mirror a random half in epoch 1, then all images every other epoch
  int64_t average_every = 5;       ///< lookahead averaging period in steps (0: none)
  Tta tta = Tta::kFlipShift;       ///< for the final accuracy
  bool validate_each_epoch = true; ///< accuracy without TTA after each epoch (not counted in the time)
  Precision precision = Precision::kFp32;  ///< bf16: bfloat16 products (autocast's choices)
  StepKind step = StepKind::kAuto;  ///< fused: birdplane's own backward pass; autograd: LibTorch's
  ConvAlgorithm conv = ConvAlgorithm::kAuto;  ///< the fused step's wide 3x3 convolutions (settings.h)

  /// A SettingError naming the setting when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
};

/// One epoch of a speedrun.
struct SpeedrunEpoch {
  int64_t epoch = 0;
  int64_t steps = 0;
  double train_loss = 0;      ///< mean over the epoch's last batch (as the reference prints it)
  double train_accuracy = 0;  ///< of the epoch's last batch
  double val_accuracy = -1;   ///< without TTA; -1 when not validated
  double seconds = 0;         ///< training only
};

struct SpeedrunResult {
  std::vector<SpeedrunEpoch> epochs;
  double accuracy = 0;         ///< on `val` with the TTA setting
  double init_seconds = 0;     ///< the whitening initialisation
  double train_seconds = 0;    ///< the epochs' training
  double eval_seconds = 0;     ///< the final (TTA) evaluation
  double total_seconds = 0;    ///< the three above: the time to accuracy
  std::string step;            ///< "fused" or "autograd", and why when autograd was not asked for
  nn::ClassifierPtr model;     ///< the trained `speedrun` network (eval mode)
};

/// Progress of a speedrun.
class SpeedrunObserver {
 public:
  virtual ~SpeedrunObserver() = default;
  /// After each training step (1-based) of `total`.
  virtual void on_step(int64_t step, int64_t total, double seconds_so_far) {}
  virtual void on_epoch(const SpeedrunEpoch& epoch) {}
};

/// Runs the recipe on `train` (uint8 images [N,3,32,32], 10 classes) and measures the final accuracy on
/// `val`. Images are normalized with `mean`/`std`. Throws Interrupted when `stop` asks (between steps).
SpeedrunResult run_speedrun(const SpeedrunOptions& options, const data::ImageSet& train, const data::ImageSet& val,
                            const std::vector<double>& mean, const std::vector<double>& std,
                            SpeedrunObserver* observer = nullptr, StopToken stop = {});

/// Writes `folder`/model.pt (what eval, predict, serve and export read: the network, the class names,
/// the speedrun's statistics and TTA) and `folder`/speedrun.json (the options, each epoch, the times),
/// creating the folder; each file atomically.
void save_speedrun(const SpeedrunResult& result, const SpeedrunOptions& options,
                   const std::vector<std::string>& classes, const std::string& folder);

/// The learning-rate factor of step `step` of `total`: from 0.2 up to 1 over the first 23% of the
/// steps, then down to 0.07 at the end (linear pieces).
double speedrun_schedule(int64_t step, int64_t total);

/// The CIFAR-10 statistics the speedrun normalizes with (airbench's constants).
const std::vector<double>& speedrun_mean();
const std::vector<double>& speedrun_std();

}  // namespace birdplane::train
