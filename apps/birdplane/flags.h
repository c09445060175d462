// The command line's side of settings: flags shared by several subcommands, their typed choices,
// the environment's defaults (BIRDPLANE_DATA, BIRDPLANE_CIFAR10_*), and the flag that names a
// library setting. The library never reads these; the commands pass what they resolve.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/download.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/data/stats.h"

namespace birdplane::cli {

/// `text` in lower case (ASCII).
std::string lowercase(std::string text);

/// The data root for --data-dir: the flag when given, else $BIRDPLANE_DATA, else ./data.
std::string data_root(const std::string& data_dir_flag);

#ifdef BIRDPLANE_WITH_DOWNLOAD
/// The official archive's address and checksum, replaced by $BIRDPLANE_CIFAR10_URL and
/// $BIRDPLANE_CIFAR10_MD5 when set (a mirror, or a local test server); $BIRDPLANE_CIFAR10_ALLOW_SMALL=1
/// accepts tiny archives (tests only). With the progress line drawn on a terminal unless `quiet`.
data::DownloadOptions download_options(bool quiet = false);
#endif

/// Loads a split from data_root(data_dir_flag), downloading CIFAR-10 first when
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
        const std::string lower = lowercase(input);
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

}  // namespace birdplane::cli
