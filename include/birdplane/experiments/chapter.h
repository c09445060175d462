// The chapter's arguments as experiments with numbers: softmax's properties, cross-entropy against
// MSE, and a fully connected network's lack of translation invariance (and what augmentation buys).
// Each experiment returns tables and plots; write_outputs puts them in a folder (`birdplane
// experiment NAME` uses runs/experiment-NAME/).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "birdplane/data/image_set.h"
#include "birdplane/report/plot.h"
#include "birdplane/train/run_spec.h"
#include "birdplane/train/trainer.h"

namespace birdplane::experiments {

/// What an experiment produced.
struct Output {
  std::string name;
  std::vector<report::Table> tables;
  std::vector<std::pair<std::string, report::LinePlot>> plots;  ///< file name (e.g. "softmax.svg"), plot
  std::vector<std::pair<std::string, report::BarChart>> bar_charts;  ///< file name, chart
  nlohmann::json summary = nlohmann::json::object();             ///< headline numbers
};

/// Writes table.md (every table), table.json ({"name", "summary", "tables"}), each plot's SVG and
/// index.html (the tables and plots as one page, linking a report.html written for each run folder the
/// experiment keeps there) into `dir` (created if missing).
void write_outputs(const Output& output, const std::string& dir);

/// softmax: on `count` random logit vectors (seeded): every probability in (0,1), each row sums to 1,
/// the order of the logits is kept; LogSoftmax + NLLLoss equals CrossEntropyLoss. The plot shows the
/// probabilities of logits (1, 2, 3) scaled by a factor from 0 to 5.
Output softmax_experiment(uint64_t seed = 123, int64_t count = 1000, int64_t classes = 10);

/// losses: two classes, the true class predicted with probability p from 0.001 to 0.999:
/// cross-entropy and MSE (on softmax against one-hot) and their gradients with respect to the true
/// class's logit (by autograd), showing where MSE's gradient vanishes.
Output losses_experiment();

/// Settings of the translation experiment.
struct TranslationOptions {
  train::RunSpec train;                          ///< model, epochs, seed, ...; runs_dir is ignored
  std::vector<std::string> models;                   ///< models side by side; empty: train.model.name alone
  std::string augment = "RandomCrop(32, padding=8)"; ///< the random translation used for run (b)
  int64_t max_shift = 8;                             ///< validation shifted by 0..max_shift pixels
  bool resume = false;                               ///< continue the arms whose run folders exist
};

/// What the training experiments (translation, models) report: each run's progress, and when each starts.
class ExperimentObserver : public train::TrainObserver {
 public:
  /// Before arm `arm` ("plain" or "augmented") trains (or resumes) into `run_dir`.
  virtual void on_run_start(const std::string& arm, const train::RunSpec& config, const std::string& run_dir) {}
};

/// translation: trains each model (train.model, or opts.models) on `train_set` (a) as is and (b) with
/// opts.augment, each into `dir`/plain and `dir`/augmented (with several models `dir`/MODEL-plain ...;
/// full run folders, resumable like any run), then evaluates them on
/// `val_set` shifted right (and right+down) by 0..max_shift pixels with zero fill: accuracy against
/// shift, and training time. Throws train::Interrupted when `stop` asks.
Output translation_experiment(const TranslationOptions& opts, const data::ImageSet& train_set,
                              const data::ImageSet& val_set, const std::vector<double>& mean,
                              const std::vector<double>& std, const std::string& dir,
                              ExperimentObserver* observer = nullptr, train::StopToken stop = {});

/// Settings of the model-family experiment.
struct ModelsOptions {
  train::RunSpec train;         ///< epochs, seed, channels, ...; the model is each of `models`
  std::vector<std::string> models;  ///< the presets to compare, in order
  bool resume = false;              ///< continue the runs whose folders exist
};

/// models: trains each preset on `train_set` into `dir`/MODEL (a full run folder) and reports train and
/// validation accuracy, parameters and time: a table and a bar chart (models.svg), the comparison the
/// book draws at the end of chapter 8.
Output models_experiment(const ModelsOptions& opts, const data::ImageSet& train_set, const data::ImageSet& val_set,
                         const std::vector<double>& mean, const std::vector<double>& std, const std::string& dir,
                         ExperimentObserver* observer = nullptr, train::StopToken stop = {});

/// The images shifted by (dx, dy) pixels (right, down when positive) with `fill`: what leaves the
/// frame is lost, what enters is fill. [N,C,H,W] or [C,H,W], any dtype.
at::Tensor shift_images(const at::Tensor& images, int64_t dx, int64_t dy, double fill = 0);

}  // namespace birdplane::experiments
