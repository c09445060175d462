#include "birdplane/data/cifar10.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/text.h"
#include "common/huge_buffers.h"

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

// The size of a batch file, after checking that it exists and holds whole records.
int64_t checked_size(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw MissingDataError(fmt::format("CIFAR-10 file {} is missing", path.string()),
                           path.parent_path().parent_path().string());
  }
  if (fs::is_directory(path, ec)) fail("CIFAR-10 file {} is a folder, expected a file", path.string());
  const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) fail("cannot read the size of CIFAR-10 file {}: {}", path.string(), ec.message());
  if (bytes <= 0 || bytes % kRecordBytes != 0 || bytes / kRecordBytes > kRecordsPerFile) {
    fail("CIFAR-10 file {} has {} bytes; expected a whole number of {}-byte records, at most {} "
         "records ({} bytes), as in the official binary release. The file is {}; delete it and "
         "download CIFAR-10 again",
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
           "is corrupt: delete it and download CIFAR-10 again",
           path.string(), i, i * kRecordBytes, static_cast<int>(label));
    }
  }
  return n;
}

}  // namespace

Split parse_split(const std::string& text) {
  if (text == "train") return Split::kTrain;
  if (text == "test") return Split::kTest;
  fail_setting("split", "'{}' is not a split; expected 'train' or 'test'", text);
}

std::string to_string(Split split) { return split == Split::kTrain ? "train" : "test"; }

const std::vector<std::string>& default_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird", "cat", "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::string resolve_data_root(const std::string& given, const std::string& fallback) {
  if (!given.empty()) return given;
  if (!fallback.empty()) return fallback;
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
  // A name given twice would make --classes pick one of its labels and silently drop the other's
  // images (found by fuzz/cifar_meta.cpp).
  for (size_t i = 0; i < names.size(); ++i) {
    for (size_t k = 0; k < i; ++k) {
      if (names[k] == names[i]) {
        fail("{}: class name '{}' appears twice (labels {} and {}); each of the 10 names must differ. The "
             "file is damaged: delete it (the official names are used without it) or run `birdplane "
             "download` again",
             (fs::path(dir) / "batches.meta.txt").string(), names[i], k, i);
      }
    }
  }
  return names;
}

namespace {

void check_data_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw MissingDataError(fmt::format("CIFAR-10 folder {} does not exist", dir),
                           fs::path(dir).parent_path().string().empty() ? "." : fs::path(dir).parent_path().string());
  }
  if (!fs::is_directory(dir, ec)) fail_setting("data_dir", "{} is not a folder", dir);
}

// The images [n,3,32,32] of n records as read from a file: a strided view (labels skipped).
at::Tensor record_images(const at::Tensor& raw, int64_t n) {
  return raw.as_strided({n, kChannels, kImageSize, kImageSize}, {kRecordBytes, kImageSize * kImageSize, kImageSize, 1},
                        1);
}

}  // namespace

ImageSet read_cifar10(const std::string& dir, Split split, const std::vector<std::string>& classes,
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
  return ImageSet(kept.slice(0, 0, n), torch::tensor(labels, torch::kInt64), classes.empty() ? names : classes,
                  fmt::format("CIFAR-10 {} split in {}", to_string(split), dir));
}

}  // namespace birdplane::data
