#include "birdplane/data/cifar10.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/memory.h"

namespace fs = std::filesystem;

namespace birdplane::data {
namespace {

const std::vector<std::string> kTrainFiles = {"data_batch_1.bin", "data_batch_2.bin",
                                              "data_batch_3.bin", "data_batch_4.bin",
                                              "data_batch_5.bin"};
const std::vector<std::string> kTestFiles = {"test_batch.bin"};

const std::vector<std::string>& files_for(Split split) {
  return split == Split::kTrain ? kTrainFiles : kTestFiles;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

// The size of a batch file, after checking that it exists and holds whole records.
int64_t checked_size(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fail("CIFAR-10 file {} is missing; run `birdplane download --data-dir {}` or point --data-dir "
         "(or $BIRDPLANE_DATA) at the folder holding cifar-10-batches-bin/",
         path.string(), path.parent_path().parent_path().string());
  }
  if (fs::is_directory(path, ec)) fail("CIFAR-10 file {} is a folder, expected a file", path.string());
  const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) fail("cannot read the size of CIFAR-10 file {}: {}", path.string(), ec.message());
  if (bytes <= 0 || bytes % kRecordBytes != 0 || bytes / kRecordBytes > kRecordsPerFile) {
    fail("CIFAR-10 file {} has {} bytes; expected a whole number of {}-byte records, at most {} "
         "records ({} bytes), as in the official binary release. The file is {}; delete it and run "
         "`birdplane download` again",
         path.string(), bytes, kRecordBytes, kRecordsPerFile, kRecordsPerFile * kRecordBytes,
         bytes < kRecordsPerFile * kRecordBytes ? "short or truncated" : "oversized");
  }
  return bytes;
}

// Reads one batch file of `bytes` bytes (from checked_size) into `dst`, records as on disk;
// returns the number of records. The label bytes are validated here, once.
int64_t read_batch_file(const fs::path& path, int64_t bytes, uint8_t* dst) {
  const int64_t n = bytes / kRecordBytes;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open CIFAR-10 file {} for reading (check its permissions)", path.string());
  if (!in.read(reinterpret_cast<char*>(dst), bytes)) {
    fail("could not read all {} bytes of CIFAR-10 file {}", bytes, path.string());
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = dst[i * kRecordBytes];
    if (label > 9) {
      fail("CIFAR-10 file {}: record {} (byte offset {}) has label {}; labels are 0 to 9. The file "
           "is corrupt: delete it and run `birdplane download` again",
           path.string(), i, i * kRecordBytes, static_cast<int>(label));
    }
  }
  return n;
}

}  // namespace

Split parse_split(const std::string& text) {
  if (text == "train") return Split::kTrain;
  if (text == "test") return Split::kTest;
  fail("--split: '{}' is not a split; expected 'train' or 'test'", text);
}

std::string to_string(Split split) { return split == Split::kTrain ? "train" : "test"; }

const std::vector<std::string>& default_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird", "cat", "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::string resolve_data_root(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("BIRDPLANE_DATA"); env && *env) return env;
  return "data";
}

std::string batches_dir(const std::string& root) {
  fs::path p(root);
  std::error_code ec;
  if (fs::exists(p / "data_batch_1.bin", ec) || fs::exists(p / "test_batch.bin", ec)) return p.string();
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  if (name == kFolderName) return p.string();
  return (p / kFolderName).string();
}

bool is_complete(const std::string& dir) {
  std::error_code ec;
  for (const auto* list : {&kTrainFiles, &kTestFiles}) {
    for (const auto& f : *list) {
      auto size = fs::file_size(fs::path(dir) / f, ec);
      if (ec || static_cast<int64_t>(size) != kRecordsPerFile * kRecordBytes) return false;
    }
  }
  return true;
}

std::vector<std::string> read_class_names(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "batches.meta.txt");
  if (!in) return default_class_names();
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() != 10) {
    fail("{}: expected 10 class names, one a line, found {}",
         (fs::path(dir) / "batches.meta.txt").string(), names.size());
  }
  return names;
}

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

namespace {

void check_data_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fail("CIFAR-10 folder {} does not exist; run `birdplane download --data-dir {}` or point "
         "--data-dir (or $BIRDPLANE_DATA) at the folder holding cifar-10-batches-bin/",
         dir, fs::path(dir).parent_path().string().empty() ? "." : fs::path(dir).parent_path().string());
  }
  if (!fs::is_directory(dir, ec)) fail("--data-dir: {} is not a folder", dir);
}

// The images [n,3,32,32] of n records as read from a file: a strided view (labels skipped).
at::Tensor record_images(const at::Tensor& raw, int64_t n) {
  return raw.as_strided({n, kChannels, kImageSize, kImageSize}, {kRecordBytes, kImageSize * kImageSize, kImageSize, 1},
                        1);
}

}  // namespace

Cifar10 Cifar10::read_classes(const std::string& dir, Split split, const std::vector<std::string>& classes,
                              ChannelStats* stats) {
  check_data_folder(dir);
  const auto names = read_class_names(dir);
  std::vector<int64_t> remap(names.size());
  if (classes.empty()) {
    for (size_t k = 0; k < remap.size(); ++k) remap[k] = static_cast<int64_t>(k);
  } else {
    remap = class_label_map(classes, names);
  }
  const auto& files = files_for(split);
  std::vector<int64_t> sizes;
  int64_t total_bytes = 0, largest = 0;
  for (const auto& f : files) {
    total_bytes += sizes.emplace_back(checked_size(fs::path(dir) / f));
    largest = std::max(largest, sizes.back());
  }
  // Room for every image of the split, of which only the kept ones are ever written: pages never
  // touched take no memory.
  auto kept = empty_huge({total_bytes / kRecordBytes, kChannels, kImageSize, kImageSize}, torch::kUInt8);
  constexpr int64_t kImageBytes = kRecordBytes - 1;
  uint8_t* out = kept.data_ptr<uint8_t>();
  std::vector<int64_t> labels;
  auto file = empty_huge({largest}, torch::kUInt8);  // one file's records, reused (huge pages: faults are dear here)
  ChannelHistogram histogram;
  for (size_t k = 0; k < files.size(); ++k) {
    const uint8_t* records = file.data_ptr<uint8_t>();
    const int64_t n = read_batch_file(fs::path(dir) / files[k], sizes[k], file.data_ptr<uint8_t>());
    if (stats) histogram.add(record_images(file, n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = remap[records[i * kRecordBytes]];
      if (label < 0) continue;
      std::memcpy(out + static_cast<int64_t>(labels.size()) * kImageBytes, records + i * kRecordBytes + 1,
                  static_cast<size_t>(kImageBytes));
      labels.push_back(label);
    }
  }
  if (stats) *stats = histogram.stats();
  const auto n = static_cast<int64_t>(labels.size());
  return Cifar10(kept.slice(0, 0, n), torch::tensor(labels, torch::kInt64), classes.empty() ? names : classes);
}

Cifar10::Cifar10(const std::string& dir, Split split) : Cifar10(read_classes(dir, split, {})) {}

Cifar10::Cifar10(at::Tensor images, at::Tensor labels, std::vector<std::string> class_names)
    : images_(std::move(images)), labels_(std::move(labels)), class_names_(std::move(class_names)) {
  BIRDPLANE_CHECK(images_.dim() == 4 && images_.scalar_type() == torch::kUInt8,
                  "images must be uint8 [N,C,H,W], got {} {}", c10::str(images_.sizes()),
                  c10::toString(images_.scalar_type()));
  BIRDPLANE_CHECK(labels_.dim() == 1 && labels_.size(0) == images_.size(0),
                  "labels must be [N] with N = {} images", images_.size(0));
  labels_ = labels_.to(torch::kInt64);
}

torch::data::Example<> Cifar10::get(size_t index) {
  return {images_[static_cast<int64_t>(index)], labels_[static_cast<int64_t>(index)]};
}

std::vector<torch::data::Example<>> Cifar10::get_batch(c10::ArrayRef<size_t> indices) {
  std::vector<int64_t> idx(indices.begin(), indices.end());
  auto b = batch(torch::tensor(idx, torch::kInt64));
  std::vector<torch::data::Example<>> out;
  out.reserve(idx.size());
  for (int64_t i = 0; i < static_cast<int64_t>(idx.size()); ++i) out.push_back({b.data[i], b.target[i]});
  return out;
}

c10::optional<size_t> Cifar10::size() const { return static_cast<size_t>(images_.size(0)); }

torch::data::Example<> Cifar10::batch(const at::Tensor& indices) const {
  return {images_.index_select(0, indices), labels_.index_select(0, indices)};
}

std::vector<int64_t> class_label_map(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& known) {
  std::vector<int64_t> remap(known.size(), -1);
  for (size_t k = 0; k < classes.size(); ++k) {
    auto it = std::find(known.begin(), known.end(), classes[k]);
    if (it == known.end()) fail("--classes: unknown class '{}'; valid names are {}", classes[k], join(known));
    auto old = static_cast<size_t>(it - known.begin());
    if (remap[old] != -1) fail("--classes: class '{}' is named twice", classes[k]);
    remap[old] = static_cast<int64_t>(k);
  }
  return remap;
}

Cifar10 Cifar10::first(int64_t n) const {
  if (n <= 0 || n >= images_.size(0)) return *this;
  return Cifar10(images_.slice(0, 0, n), labels_.slice(0, 0, n), class_names_);
}

Cifar10 Cifar10::subset(const std::vector<std::string>& classes) const {
  if (classes.empty()) return Cifar10(images_, labels_, class_names_);
  auto map = torch::tensor(class_label_map(classes, class_names_), torch::kInt64);
  auto new_labels = map.index_select(0, labels_);
  auto keep = (new_labels >= 0).nonzero().squeeze(1);
  auto images = empty_huge({keep.size(0), images_.size(1), images_.size(2), images_.size(3)}, torch::kUInt8);
  torch::index_select_out(images, images_, 0, keep);
  return Cifar10(images, new_labels.index_select(0, keep), classes);
}

}  // namespace birdplane::data
