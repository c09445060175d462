// Helpers shared by subcommands: loading the data, the typed choices of flags, progress displays
// and Ctrl-C. The library computes; everything here turns its values into text on a terminal.
#pragma once

#include <atomic>
#include <utility>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/data/stats.h"
#include "birdplane/experiments/chapter.h"
#include "birdplane/train/trainer.h"
#include "common/text.h"

namespace birdplane::cli {

/// Loads a split from --data-dir (or $BIRDPLANE_DATA, or ./data), downloading CIFAR-10 first when
/// it is missing and `download` is true; otherwise a missing folder is an error that says how to
/// get the data. Only the named `classes` are kept (all when empty; see data::read_cifar10); with
/// `stats`, the channel statistics of the whole split are gathered while reading.
data::ImageSet load_split(const std::string& data_dir_flag, data::Split split, bool download,
                          const std::vector<std::string>& classes = {}, data::ChannelStats* stats = nullptr);

/// The flags that say how an image folder is read (--image-size, --crop, --max-pixels,
/// --skip-bad-images, --cache-dir, --no-cache), shared by train, eval, stats and show.
struct FolderFlags {
  std::string image_size;  ///< "H" or "H,W"; empty: the images' own size
  data::CropMode crop = data::CropMode::kNone;
  int64_t max_pixels = data::kDefaultMaxPixels;
  bool skip_bad_images = false;
  std::string cache_dir;
  bool no_cache = false;
};

/// Declares FolderFlags' flags on `cmd`; `with_size` adds --image-size and --crop (eval takes both
/// from the checkpoint instead).
void add_folder_flags(CLI::App& cmd, FolderFlags& flags, bool with_size);

/// ImageFolderOptions from the flags.
data::ImageFolderOptions folder_options(const FolderFlags& flags);

/// read_image_folder with a progress line on a terminal (stderr: files per second, time left) and a
/// closing line saying how many images were read, how fast, what was skipped and where the cache is.
/// The report goes into `report` when given.
data::ImageSet read_folder_with_progress(const std::string& root, const data::ImageFolderOptions& options,
                                         data::ImageFolderReport* report = nullptr);

/// A JSON record of an image folder read, for config.json: files, images, skipped files with reasons,
/// the cache file and whether the pixels came from it.
nlohmann::json folder_record(const std::string& root, const data::ImageSet& set, const data::ImageFolderReport& r);

/// What a training run reads: the training and validation sets of cfg.classes (cut to --limit-train /
/// --limit-val), and the normalization statistics of the whole training split (as the book computes
/// them, before taking a class subset). For an image folder, the statistics are those of the training
/// images, and `record` describes what was read (for config.json).
struct TrainingData {
  data::ImageSet train, val;
  data::ChannelStats stats;
  nlohmann::json record = nlohmann::json::object();
};

/// Loads TrainingData for `cfg`: from cfg.image_folder when set (validation from cfg.val_folder or
/// cfg.val_fraction), else CIFAR-10 (downloading the training split first when missing and `download`).
TrainingData load_training_data(const train::TrainConfig& cfg, bool download, bool use_cache = true);

/// The command-line flag of a library setting: "batch_size" -> "--batch-size", "lr" -> "--lr".
std::string flag_for_setting(const std::string& setting);

/// A CLI11 transformer from the names of an enum's values (the library's to_string, any case) to the
/// values; anything else is a parse error that lists the names:
///   cmd->add_option("--precision", cfg.precision)->transform(choices(train::kPrecisions));
template <typename E, size_t N>
CLI::Validator choices(const E (&values)[N]) {
  std::vector<std::pair<std::string, E>> named;
  std::string list;
  for (E v : values) {
    named.emplace_back(to_string(v), v);
    list += (list.empty() ? "" : ", ") + to_string(v);
  }
  return CLI::Validator(
      [named, list](std::string& input) -> std::string {
        const std::string lower = to_lower(input);
        for (const auto& [name, value] : named) {
          if (name == lower) {
            input = std::to_string(static_cast<int>(value));  // CLI11 reads an enum as its number
            return {};
          }
        }
        return "'" + input + "' is not one of " + list;
      },
      "{" + list + "}");
}

/// Draws training progress: on a terminal a progress line redrawn in place, and one line per epoch
/// (loss, accuracies, time, images per second) everywhere.
class ProgressPrinter : public experiments::ExperimentObserver {
 public:
  explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}
  void on_step(const train::StepProgress& p) override;
  void on_epoch(const train::EpochMetrics& m, int64_t epochs) override;
  void on_end(const train::TrainResult& r) override;
  void on_run_start(const std::string& arm, const train::TrainConfig& config, const std::string& run_dir) override;

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
