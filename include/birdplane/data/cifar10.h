// CIFAR-10, the official binary version (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "birdplane/check.h"
#include "birdplane/path_error.h"
#include "birdplane/data/image_set.h"
#include "birdplane/data/stats.h"

namespace birdplane::data {

/// Which half of CIFAR-10: "train" (data_batch_1..5, 50,000 images) or "test" (test_batch, 10,000).
enum class Split { kTrain, kTest };

/// Parses "train" or "test" (a SettingError for "split" otherwise).
Split parse_split(const std::string& text);
std::string to_string(Split split);

inline constexpr int kImageSize = 32;
inline constexpr int kChannels = 3;
inline constexpr int64_t kRecordBytes = 1 + kChannels * kImageSize * kImageSize;  // 3073
inline constexpr int64_t kRecordsPerFile = 10000;
inline constexpr const char* kFolderName = "cifar-10-batches-bin";

/// Thrown when a CIFAR-10 file or folder is missing (and, in load_training_data, downloading was not
/// allowed or this build has no downloader). path() is the data root to download into; a front
/// end says how to get the data.
class MissingDataError : public PathError {
 public:
  using PathError::PathError;
};

/// The ten class names of the official release, in label order.
const std::vector<std::string>& default_class_names();

/// The data root to use: `given` when not empty, else `fallback` when not empty (a front end passes
/// its environment's choice), else "data". It may name the folder holding cifar-10-batches-bin/ or
/// that folder itself; see batches_dir().
std::string resolve_data_root(const std::string& given, const std::string& fallback = "");

/// The cifar-10-batches-bin folder for a data root: `root` itself when it holds data_batch_1.bin or
/// test_batch.bin or is named cifar-10-batches-bin, else root/cifar-10-batches-bin.
std::string batches_dir(const std::string& root);

/// True when `dir` holds every file of both splits with the right sizes (a quick check, not a
/// checksum): the test for "is the data already there".
bool is_complete(const std::string& dir);

/// Reads a split of CIFAR-10 from `dir` (a cifar-10-batches-bin folder) as an ImageSet of uint8
/// [N,3,32,32] images, keeping only the named classes (labels remapped in the order given, as
/// ImageSet::subset does; all ten when `classes` is empty). It reads one file at a time: only one
/// file's records and the kept images are ever in memory, not the whole split. When `stats` is given
/// it receives channel_stats() of the whole split, every class, gathered on the way. Throws
/// birdplane::Error naming the file when it is missing, short, oversized or holds a label over 9.
ImageSet read_cifar10(const std::string& dir, Split split, const std::vector<std::string>& classes = {},
                      ChannelStats* stats = nullptr);

/// Reads batches.meta.txt (one class name a line, blank lines ignored); falls back to the official
/// names when the file is absent. Throws birdplane::Error naming the file unless it holds exactly ten
/// different names.
std::vector<std::string> read_class_names(const std::string& dir);

}  // namespace birdplane::data
