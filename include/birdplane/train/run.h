// A training run as a library object: start one from a run specification, or resume a run folder,
// then train it. The run reads its data (train::RunSpec::data, through data::load_training_data),
// builds the trainer, and owns the run folder: the existence checks, the lock, config.json. In a
// multi-process run (train/distributed.h) rank 0 decides and writes; the others follow through the
// process group.
//   train::RunSpec spec;
//   spec.data.image_folder = "photos";
//   spec.data.val_fraction = 0.2;
//   spec.model.name = "net";
//   auto run = train::Run::start(spec);
//   auto result = run.train(&observer);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "birdplane/check.h"
#include "birdplane/path_error.h"
#include "birdplane/data/training_data.h"
#include "birdplane/train/run_spec.h"
#include "birdplane/train/trainer.h"

namespace birdplane::train {

class Distributed;

/// Thrown by Run::start when the run folder exists already: pick another name, or resume it.
class RunExistsError : public PathError {
 public:
  using PathError::PathError;
};

/// What a run uses besides its specification.
struct RunOptions {
  /// How missing data is fetched (CIFAR-10's archive) and who hears of the reading.
  data::DataLoadOptions data;
  /// A joined process group (nullptr: a single process). Must outlive the Run.
  Distributed* dist = nullptr;
  /// The caller's own classifier instead of the registry's (see Trainer); Run::start only.
  nn::ClassifierPtr model;
};

/// What Run::resume may change in a stopped run: where its data is now, whether to download or use
/// the cache, and a longer run. Everything else comes from its config.json.
struct ResumeChanges {
  std::optional<std::string> data_dir, image_folder, val_folder, cache_dir;
  std::optional<bool> download, use_cache;
  std::optional<int64_t> epochs;
};

class Run {
 public:
  /// A new run: checks `spec` (SettingError naming the setting), names it when spec.name is empty
  /// (default_run_name), refuses a folder that exists (RunExistsError), reads the data (rank 0 first:
  /// a download or an image cache is then there for the others), builds the trainer, and only then
  /// creates the run folder (locked) and writes config.json. A data error leaves nothing on disk.
  static Run start(RunSpec spec, RunOptions options = {});
  /// Continues the run in folder `path`: locks it, reads the specification from its config.json (an
  /// Error naming the file when that is no birdplane config), applies `changes`, reads the data and
  /// loads checkpoint.pt (NoCheckpointError when the run has none yet). In a multi-process run rank 0
  /// reads the folder; the specification and the checkpoint reach the others through the process group.
  static Run resume(const std::string& path, const ResumeChanges& changes = {}, RunOptions options = {});

  Run(Run&&) noexcept;
  Run& operator=(Run&&) noexcept;
  ~Run();

  /// Trains from where the run is to its last epoch (Trainer::run): progress to `observer`, and
  /// Interrupted when `stop` asks.
  TrainResult train(TrainObserver* observer = nullptr, StopToken stop = {});

  /// The specification (its model part filled in from the data).
  const RunSpec& spec() const;
  /// The run folder (runs_dir/name for a new run; as given for a resumed one).
  const std::string& path() const;
  /// Whether this run continues a stopped one.
  bool resumed() const;
  /// Whether this process writes the run folder (a single process, or rank 0).
  bool writes() const;
  Trainer& trainer();
  const data::TrainingData& data() const;

 private:
  struct State;
  explicit Run(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

/// A run folder name from the local time and the model: "20261206-071500-net".
std::string default_run_name(const std::string& model);

}  // namespace birdplane::train
