// CIFAR-10, the official binary version (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/data/datasets/base.h>
#include <torch/data/example.h>
#include <ATen/core/Tensor.h>

#include "birdplane/data/stats.h"

namespace birdplane::data {

/// Which half of CIFAR-10: "train" (data_batch_1..5, 50,000 images) or "test" (test_batch, 10,000).
enum class Split { kTrain, kTest };

/// Parses "train" or "test" (the flag --split names itself in the error).
Split parse_split(const std::string& text);
std::string to_string(Split split);

inline constexpr int kImageSize = 32;
inline constexpr int kChannels = 3;
inline constexpr int64_t kRecordBytes = 1 + kChannels * kImageSize * kImageSize;  // 3073
inline constexpr int64_t kRecordsPerFile = 10000;
inline constexpr const char* kFolderName = "cifar-10-batches-bin";

/// The ten class names of the official release, in label order.
const std::vector<std::string>& default_class_names();

/// Where the data lives: `flag` (--data-dir) when not empty, else $BIRDPLANE_DATA, else ./data.
/// The result may name the folder holding cifar-10-batches-bin/ or that folder itself; see
/// batches_dir().
std::string resolve_data_root(const std::string& flag);

/// The cifar-10-batches-bin folder for a data root: `root` itself when it holds data_batch_1.bin or
/// test_batch.bin or is named cifar-10-batches-bin, else root/cifar-10-batches-bin.
std::string batches_dir(const std::string& root);

/// True when `dir` holds every file of both splits with the right sizes (a quick check, not a
/// checksum): the test for "is the data already there".
bool is_complete(const std::string& dir);

/// The dataset. Images are held once as uint8 [N,3,32,32] (no float copy); labels int64 [N].
/// Read from disk, images() is packed (the label bytes of the file records left out).
/// get(i) returns one Example like LibTorch's MNIST; get_batch() does one index_select.
class Cifar10 : public torch::data::datasets::Dataset<Cifar10> {
 public:
  /// Reads a split from `dir` (a cifar-10-batches-bin folder): read_classes(dir, split, {}). Throws
  /// birdplane::Error naming the file when it is missing, short, oversized or holds a label over 9.
  Cifar10(const std::string& dir, Split split);
  /// Reads a split keeping only the named classes (labels remapped as subset() does; all ten when
  /// `classes` is empty), one file at a time: only one file's records and the kept images are ever
  /// in memory, not the whole split. When `stats` is given it receives channel_stats() of the whole
  /// split, every class, gathered on the way. Same result as Cifar10(dir, split).subset(classes).
  static Cifar10 read_classes(const std::string& dir, Split split, const std::vector<std::string>& classes,
                              ChannelStats* stats = nullptr);

  /// Wraps tensors that are already in memory (uint8 [N,3,32,32], int64 [N]).
  Cifar10(at::Tensor images, at::Tensor labels, std::vector<std::string> class_names);

  /// One image (uint8 [3,32,32]) and its label (int64 scalar).
  torch::data::Example<> get(size_t index) override;
  /// One index_select for the whole batch, then split into Examples (views, no copy).
  std::vector<torch::data::Example<>> get_batch(c10::ArrayRef<size_t> indices) override;
  c10::optional<size_t> size() const override;

  /// The stacked batch for `indices`: images uint8 [B,3,32,32], labels int64 [B].
  torch::data::Example<> batch(const at::Tensor& indices) const;

  /// Whole-split accessors for batched use.
  const at::Tensor& images() const { return images_; }
  const at::Tensor& labels() const { return labels_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  int64_t num_classes() const { return static_cast<int64_t>(class_names_.size()); }

  /// The images of the named classes, labels remapped in the order given (the book's cifar2:
  /// {"airplane","bird"} maps airplane to 0 and bird to 1). An unknown name is an error that
  /// lists the valid ones. An empty list returns a copy of the whole set.
  Cifar10 subset(const std::vector<std::string>& classes) const;

  /// The first `n` images (views, no copy); n <= 0 or n >= size() gives the whole set.
  Cifar10 first(int64_t n) const;

 private:
  at::Tensor images_;
  at::Tensor labels_;
  std::vector<std::string> class_names_;
};

/// For each of the `known` class names (in label order), its label in `classes`, or -1 when it is
/// not kept. An unknown or repeated name is an Error naming --classes and listing the valid names.
std::vector<int64_t> class_label_map(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& known);

/// Splits "airplane,bird" into names (spaces trimmed); empty text gives an empty list.
std::vector<std::string> parse_class_list(const std::string& text);

/// Reads batches.meta.txt (one class name a line); falls back to the official names when the file
/// is absent.
std::vector<std::string> read_class_names(const std::string& dir);

}  // namespace birdplane::data
