// The one labelled image set every data source produces and every consumer takes: the batch loader,
// the trainer, evaluation, `stats` and `show`. Images are held once, as uint8 [N,C,H,W] (no float
// copy), labels as int64 [N], with the class names in label order and a note of where it came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/data/datasets/base.h>
#include <torch/data/example.h>
#include <ATen/core/Tensor.h>

namespace birdplane::data {

/// A labelled image set in memory. It stays a torch::data::datasets::Dataset, so LibTorch's own
/// DataLoader works with it: get(i) returns one Example, get_batch() does one index_select.
class ImageSet : public torch::data::datasets::Dataset<ImageSet> {
 public:
  /// Wraps tensors already in memory: `images` uint8 [N,C,H,W], `labels` integers [N] (stored as
  /// int64), each in 0..class_names.size()-1. `source` says where the images came from (for messages
  /// and run records), e.g. "CIFAR-10 train split in data/cifar-10-batches-bin". Throws
  /// birdplane::Error when the shapes, dtype or labels do not fit.
  ImageSet(at::Tensor images, at::Tensor labels, std::vector<std::string> class_names, std::string source = "");

  /// One image (uint8 [C,H,W]) and its label (int64 scalar).
  torch::data::Example<> get(size_t index) override;
  /// One index_select for the whole batch, then split into Examples (views, no copy).
  std::vector<torch::data::Example<>> get_batch(c10::ArrayRef<size_t> indices) override;
  c10::optional<size_t> size() const override;

  /// The stacked batch for `indices` (int64 [B]): images uint8 [B,C,H,W], labels int64 [B].
  torch::data::Example<> batch(const at::Tensor& indices) const;

  /// Whole-set accessors for batched use.
  const at::Tensor& images() const { return images_; }
  const at::Tensor& labels() const { return labels_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  int64_t num_classes() const { return static_cast<int64_t>(class_names_.size()); }
  const std::string& source() const { return source_; }
  /// The shape of one image: {C, H, W}.
  std::vector<int64_t> image_shape() const;

  /// The images of the named classes, labels remapped in the order given (the book's cifar2:
  /// {"airplane","bird"} maps airplane to 0 and bird to 1). An unknown or repeated name is a
  /// SettingError for "classes" that lists the valid names. An empty list returns the whole set.
  ImageSet subset(const std::vector<std::string>& classes) const;

  /// The first `n` images (views, no copy); n <= 0 or n >= size() gives the whole set.
  ImageSet first(int64_t n) const;

 private:
  at::Tensor images_;
  at::Tensor labels_;
  std::vector<std::string> class_names_;
  std::string source_;
};

/// For each of the `known` class names (in label order), its label in `classes`, or -1 when it is
/// not kept. An unknown or repeated name is a SettingError for "classes" listing the valid names.
std::vector<int64_t> class_label_map(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& known);

/// Splits "airplane,bird" into names (spaces trimmed); empty text gives an empty list.
std::vector<std::string> parse_class_list(const std::string& text);

}  // namespace birdplane::data
