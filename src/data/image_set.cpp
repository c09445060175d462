#include "birdplane/data/image_set.h"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/huge_buffers.h"
#include "common/text.h"

namespace birdplane::data {

std::vector<std::string> parse_class_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

ImageSet::ImageSet(at::Tensor images, at::Tensor labels, std::vector<std::string> class_names, std::string source)
    : images_(std::move(images)), labels_(std::move(labels)), class_names_(std::move(class_names)),
      source_(std::move(source)) {
  BIRDPLANE_CHECK(images_.dim() == 4 && images_.scalar_type() == torch::kUInt8,
                  "images must be uint8 [N,C,H,W], got {} {}", c10::str(images_.sizes()),
                  c10::toString(images_.scalar_type()));
  BIRDPLANE_CHECK(labels_.dim() == 1 && labels_.size(0) == images_.size(0),
                  "labels must be [N] with N = {} images", images_.size(0));
  BIRDPLANE_CHECK(!class_names_.empty(), "an image set needs at least one class name");
  labels_ = labels_.to(torch::kInt64);
  if (labels_.numel() > 0) {
    const int64_t lo = labels_.min().item<int64_t>(), hi = labels_.max().item<int64_t>();
    BIRDPLANE_CHECK(lo >= 0 && hi < num_classes(), "labels must be 0 to {} (one per class name), found {} to {}",
                    num_classes() - 1, lo, hi);
  }
}

std::vector<int64_t> ImageSet::image_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

torch::data::Example<> ImageSet::get(size_t index) {
  return {images_[static_cast<int64_t>(index)], labels_[static_cast<int64_t>(index)]};
}

std::vector<torch::data::Example<>> ImageSet::get_batch(c10::ArrayRef<size_t> indices) {
  std::vector<int64_t> idx(indices.begin(), indices.end());
  auto b = batch(torch::tensor(idx, torch::kInt64));
  std::vector<torch::data::Example<>> out;
  out.reserve(idx.size());
  for (int64_t i = 0; i < static_cast<int64_t>(idx.size()); ++i) out.push_back({b.data[i], b.target[i]});
  return out;
}

c10::optional<size_t> ImageSet::size() const { return static_cast<size_t>(images_.size(0)); }

torch::data::Example<> ImageSet::batch(const at::Tensor& indices) const {
  // Into a pooled buffer: the loader asks for a batch of the same size over and over.
  auto sizes = images_.sizes().vec();
  sizes[0] = indices.numel();
  auto images = empty_huge(sizes, images_.scalar_type());
  torch::index_select_out(images, images_, 0, indices);
  return {images, labels_.index_select(0, indices)};
}

std::vector<int64_t> class_label_map(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& known) {
  std::vector<int64_t> remap(known.size(), -1);
  for (size_t k = 0; k < classes.size(); ++k) {
    auto it = std::find(known.begin(), known.end(), classes[k]);
    if (it == known.end()) fail_setting("classes", "unknown class '{}'; valid names are {}", classes[k], join(known));
    auto old = static_cast<size_t>(it - known.begin());
    if (remap[old] != -1) fail_setting("classes", "class '{}' is named twice", classes[k]);
    remap[old] = static_cast<int64_t>(k);
  }
  return remap;
}

ImageSet ImageSet::first(int64_t n) const {
  if (n <= 0 || n >= images_.size(0)) return *this;
  return ImageSet(images_.slice(0, 0, n), labels_.slice(0, 0, n), class_names_, source_);
}

ImageSet ImageSet::subset(const std::vector<std::string>& classes) const {
  if (classes.empty()) return *this;
  auto map = torch::tensor(class_label_map(classes, class_names_), torch::kInt64);
  auto new_labels = map.index_select(0, labels_);
  auto keep = (new_labels >= 0).nonzero().squeeze(1);
  auto images = empty_huge({keep.size(0), images_.size(1), images_.size(2), images_.size(3)}, torch::kUInt8);
  torch::index_select_out(images, images_, 0, keep);
  return ImageSet(images, new_labels.index_select(0, keep), classes, source_);
}

}  // namespace birdplane::data
