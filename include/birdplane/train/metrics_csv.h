// metrics.csv: one row per epoch of a run (losses, accuracies, time), written after every epoch and
// read back to resume a run and to report on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::train {

/// One row of metrics.csv.
struct EpochMetrics {
  int64_t epoch = 0;  ///< 1-based
  double train_loss = 0, train_accuracy = 0;  ///< running, over the epoch's training steps
  double val_loss = -1, val_accuracy = -1;    ///< -1 when not evaluated this epoch
  double seconds = 0, images_per_second = 0;
  double lr = -1;  ///< the first parameter group's learning rate in the epoch's last step; -1: not known
};

/// Reads metrics.csv rows written by a run (for resume and reports). A malformed row is an Error
/// naming the file and line.
std::vector<EpochMetrics> read_metrics(const std::string& path);

/// Writes `rows` to `path` (atomically: a kill leaves the old file or the new one). Figures not measured
/// (-1) are written as empty cells.
void write_metrics(const std::string& path, const std::vector<EpochMetrics>& rows);

}  // namespace birdplane::train
