// A run folder as one HTML page (report.html): settings, curves, the confusion matrix, per-class
// figures, the validation images with the highest loss, training images after augmentation, time.
// Self-contained (inline SVG and PNG, no script, nothing from the network), so it opens offline and
// from a file:// address.
//   birdplane::report::write_run_report("runs/pets");   // runs/pets/report.html
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::data {
struct TrainingData;
}

namespace birdplane::report {

struct RunReportOptions {
  /// Evaluate the run's model (model.pt, else checkpoint.pt) on its validation images for the confusion
  /// matrix, per-class figures and hardest images. Without it (or without a model or validation
  /// images yet) the page has the curves and settings only, and says why.
  bool evaluate = true;
  /// Where the data is now, when not where config.json says (DataSpec::data_dir); "" keeps it.
  std::string data_dir;
  /// How many validation images with the highest loss to show.
  int64_t hardest = 32;
  /// Where to write; "" is report.html in the run folder.
  std::string out;
  /// The run's data when the caller has it loaded (train does, at the end of a run); nullptr: read it
  /// as config.json says (never downloading).
  const data::TrainingData* data = nullptr;
};

/// What write_run_report wrote and found.
struct RunReportResult {
  std::string path;           ///< the page written
  int64_t epochs = 0;         ///< rows of metrics.csv
  bool evaluated = false;     ///< whether the evaluation sections are there
  double val_accuracy = -1;   ///< of the evaluation, when evaluated
  std::string note;           ///< why the evaluation sections are missing, when they are
};

/// Writes the report of the run in folder `run_dir` (atomically) and touches nothing else there. A
/// folder that is not a run (no config.json), a missing or damaged metrics.csv or a model file that
/// cannot be read is an Error naming the file. Data that is gone (moved CIFAR-10, a deleted image
/// folder) is a note on the page, not an error.
RunReportResult write_run_report(const std::string& run_dir, const RunReportOptions& options = {});

/// A whole page in the reports' style (the same inline style sheet, no script) with `title` around
/// `body`, which is HTML.
std::string html_page(const std::string& title, const std::string& body);

/// `text` with &, <, > and " written as HTML entities.
std::string html_escape(const std::string& text);

/// One page comparing runs (compare.html): their curves on shared axes, the settings in which they
/// differ, and their final figures. Reads config.json and metrics.csv of each run (Errors as
/// write_run_report's) and writes `out` atomically; nothing in the run folders changes.
void write_comparison(const std::vector<std::string>& run_dirs, const std::string& out);

}  // namespace birdplane::report
