// What the command line draws while the library works: training progress, image-folder decoding,
// and Ctrl-C. The library reports through observers; everything here turns that into text.
#pragma once

#include <atomic>
#include <string>

#include "birdplane/data/image_folder.h"
#include "birdplane/data/training_data.h"
#include "birdplane/experiments/chapter.h"
#include "birdplane/train/trainer.h"

namespace birdplane::cli {

/// Image-folder decoding on stderr: a progress line on a terminal (files per second, time left), then a
/// closing line per folder saying how many images were read, how fast, what was skipped and where the
/// cache is. `use_cache`: whether to print why no cache was used.
class FolderProgressPrinter : public data::DataObserver {
 public:
  explicit FolderProgressPrinter(bool use_cache = true);
  void on_folder_progress(const std::string& root, const data::FolderProgress& p) override;
  void on_folder_read(const std::string& root, const data::ImageSet& set,
                      const data::ImageFolderReport& report) override;
  /// Ends an open progress line (before an error message).
  void close_line();

 private:
  bool terminal_;
  bool use_cache_;
  bool line_open_ = false;
};

/// read_image_folder with a FolderProgressPrinter. A bad image is an error that says how to skip such
/// files. The report goes into `report` when given.
data::ImageSet read_folder_with_progress(const std::string& root, const data::ImageFolderOptions& options,
                                         data::ImageFolderReport* report = nullptr);

/// Draws training progress: on a terminal a progress line redrawn in place, and one line per epoch
/// (loss, accuracies, time, images per second) everywhere.
class ProgressPrinter : public experiments::ExperimentObserver {
 public:
  explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}
  void on_step(const train::StepProgress& p) override;
  void on_epoch(const train::EpochMetrics& m, int64_t epochs) override;
  void on_end(const train::TrainResult& r) override;
  void on_run_start(const std::string& arm, const train::RunSpec& config, const std::string& run_dir) override;

 private:
  bool terminal_;
  bool line_open_ = false;
};

/// "1:05" or "1:02:03".
std::string format_duration(double seconds);

/// Ctrl-C during training: the first asks the run to stop after its current step (the checkpoint of
/// the last finished epoch stays), a second ends the program at once. While an InterruptGuard lives,
/// SIGINT sets the flag behind stop_token().
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  train::StopToken stop_token() const;
};

}  // namespace birdplane::cli
