// The run folder, runs/<name>/: one type creates it, writes its config.json, holds its lock and
// reopens it to resume. Training and the experiments' runs both go through it, so every run folder
// has the same files and every one can be resumed.
//
//   config.json    every setting, versions, the environment (written once, when the run starts)
//   metrics.csv    one row per epoch          checkpoint.pt  model, optimizer, epoch (every epoch)
//   model.pt       the final model            results.json   the final accuracies
//   best.pt        the best validation so far (runs that validate)
//   lock           held (flock) while a process trains into the folder
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "birdplane/check.h"
#include "birdplane/path_error.h"

namespace birdplane::train {

class RunDir {
 public:
  /// Creates a new run folder at `path` (and its parents) and locks it. A folder that exists already
  /// is an Error that says to pick another name or resume it.
  static RunDir create(const std::string& path);
  /// Opens an existing run folder to resume it and locks it. A folder without config.json is an
  /// Error; so is one another process holds.
  static RunDir open(const std::string& path);

  RunDir(RunDir&& other) noexcept;
  RunDir& operator=(RunDir&& other) noexcept;
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  /// Releases the lock; the folder and its files stay.
  ~RunDir();

  const std::string& path() const { return path_; }
  std::string config_path() const { return file("config.json"); }
  std::string metrics_path() const { return file("metrics.csv"); }
  std::string checkpoint_path() const { return file("checkpoint.pt"); }
  std::string model_path() const { return file("model.pt"); }
  /// The weights of the best validation so far (TrainingSpec::monitor), written when it improves.
  std::string best_path() const { return file("best.pt"); }
  std::string results_path() const { return file("results.json"); }
  /// path()/name.
  std::string file(const std::string& name) const;

  /// NoCheckpointError (below) unless checkpoint.pt exists: a run can resume only from one.
  void require_checkpoint() const;
  /// Whether checkpoint.pt exists (a run that stopped before its first epoch ended has none).
  bool has_checkpoint() const;
  /// Writes config.json atomically.
  void write_config(const nlohmann::json& config) const;
  /// Reads config.json; a missing or malformed file is an Error naming it.
  nlohmann::json read_config() const;
  /// Writes `j` (pretty-printed) to path()/name atomically.
  void write_json(const std::string& name, const nlohmann::json& j) const;

 private:
  RunDir(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}

  std::string path_;
  int lock_fd_ = -1;
};

/// Thrown by RunDir::require_checkpoint (so by Run::resume and Trainer::resume_from) for a run folder
/// without checkpoint.pt: the run stopped
/// before its first epoch ended, so it can only be started again.
class NoCheckpointError : public PathError {
 public:
  using PathError::PathError;
};

}  // namespace birdplane::train
