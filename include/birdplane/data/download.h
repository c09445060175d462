// Downloading and installing the official CIFAR-10 binary archive, crash-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "birdplane/check.h"

namespace birdplane::data {

inline constexpr const char* kCifar10Url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
inline constexpr const char* kCifar10Md5 = "c32a1d4ab5d03f1284b67883e8d87530";

/// Where a download is, for a progress display. Counts include what a resumed .part file already held;
/// the rate counts only this run's bytes.
struct DownloadProgress {
  std::string file;               ///< the archive's name, e.g. cifar-10-binary.tar.gz
  int64_t bytes = 0;              ///< received so far
  int64_t total = -1;             ///< the whole file, or -1 while the server has not said
  double bytes_per_second = 0;    ///< this run's average rate
  bool finished = false;          ///< the last report of this transfer
};

/// Why a download or install failed: what() names the address or file and what to check, in the
/// library's words ("the address", "the data folder"); a front end may add its own names for them.
class DownloadError : public Error {
 public:
  using Error::Error;
};

/// Options for ensure_cifar10. Defaults are the official archive.
struct DownloadOptions {
  std::string url = kCifar10Url;  ///< where the .tar.gz lives (tests point it at 127.0.0.1)
  std::string md5 = kCifar10Md5;  ///< expected MD5 of the archive, lower-case hex
  /// Called as the archive arrives, at most every 100 ms and once at the end (the command line draws
  /// its progress line from it). The library itself never prints.
  std::function<void(const DownloadProgress&)> on_progress;
  /// Called with a one-line note, e.g. when it waits for another process downloading into the folder.
  std::function<void(const std::string&)> on_note;
  /// Refuse to extract more than this many bytes in all (decompression-bomb guard). The real
  /// archive unpacks to about 185 MB.
  int64_t max_extract_bytes = int64_t{400} << 20;
  /// Refuse any single entry larger than this (the largest real file is 30,730,000 bytes).
  int64_t max_entry_bytes = int64_t{64} << 20;
  /// true (default): the installed folder must pass is_complete (every file 10,000 records). false
  /// (tests, tiny fake archives): every file present with a whole number of records, 1 to 10,000.
  bool require_full_size = true;
};

/// True when `dir` (a cifar-10-batches-bin folder) holds a dataset good enough for `options`:
/// is_complete(dir), or with require_full_size false every file present with whole records.
bool is_installed(const std::string& dir, const DownloadOptions& options);

/// Makes sure CIFAR-10 is complete in batches_dir(root) and returns that folder. When it already
/// is, does nothing. Otherwise downloads `url` to <root>/cifar-10-binary.tar.gz.part (resuming
/// with an HTTP Range request when the part file exists and the server allows), checks the MD5,
/// extracts into a temporary folder beside the target and renames it into place, so an interrupted
/// run never leaves a half-written dataset. Throws birdplane::Error naming the URL or file.
/// (When root is the cifar-10-batches-bin folder itself, its parent plays the part of <root>.)
/// Processes sharing a data folder take turns: the folder is locked (flock) while installing.
std::string ensure_cifar10(const std::string& root, const DownloadOptions& options = {});

/// MD5 of a file as lower-case hex.
std::string md5_file(const std::string& path);

}  // namespace birdplane::data
