// libFuzzer target: the image-folder cache file (<cache_dir>/<name>-<hash>.bpcache), which
// read_image_folder maps into memory instead of decoding a folder again. A fixed tiny folder (two
// classes, two 4x4 PPM images each) is read once to learn the cache file's path and key; each input
// then replaces that file, and read_image_folder must either reject it (from_cache == false, decoding
// the folder instead) or return a set matching the folder: [4,3,4,4] uint8, labels 0..1, the classes.
//
// The cache holds a key (hashing the folder's files, their sizes, times and inodes) and a checksum,
// which random bytes never match. So that the fuzzer reaches the code behind them: a 40-character run
// of '@' in the input is replaced by this run's real key (the committed seed is a valid cache with its
// key so replaced), and when the file ends with the eight bytes "FIXSUM!!" they are replaced by the
// checksum the reader expects (the seed ends so). Both keep the
// input's length, so every offset in it stays as the fuzzer wrote it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/image_folder.h"
#include "data/folder_cache.h"
#include "fuzz_util.h"

namespace fs = std::filesystem;
namespace bd = birdplane::data;

namespace {

const std::string kKeyPlaceholder(40, '@');
constexpr char kFixSum[9] = "FIXSUM!!";

struct State {
  fs::path root, cache_file;
  std::string key;
  bd::ImageFolderOptions options;
};

State& state() {
  static State s;
  return s;
}

using birdplane::data::folder_cache::align64;
using birdplane::data::folder_cache::payload_checksum;

// Replaces a trailing "FIXSUM!!" by the checksum the reader computes for the labels and pixels the
// header describes (nothing when the header cannot be read: the reader refuses those anyway).
void fix_checksum(std::vector<uint8_t>& file) {
  const size_t size = file.size();
  if (size < 64 || std::memcmp(file.data() + size - 8, kFixSum, 8) != 0) return;
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data() + 8, 8);
  if (header_len > size - 16) return;
  int64_t n = 0;
  try {
    const auto j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(file.data() + 16), header_len));
    n = j.at("n").get<int64_t>();
  } catch (const std::exception&) {
    return;
  }
  if (n < 0 || n > (int64_t{1} << 32)) return;
  const size_t labels_offset = align64(16 + header_len);
  const size_t pixels_offset = align64(labels_offset + 8 * static_cast<size_t>(n));
  if (pixels_offset > size - 8) return;
  const uint64_t sum = payload_checksum(file.data() + labels_offset, 8 * static_cast<size_t>(n),
                                        file.data() + pixels_offset, size - 8 - pixels_offset);
  std::memcpy(file.data() + size - 8, &sum, 8);
}

void write_ppm(const fs::path& path, uint8_t shade) {
  std::string ppm = "P6\n4 4\n255\n";
  for (int i = 0; i < 4 * 4 * 3; ++i) ppm.push_back(static_cast<char>(shade + i));
  birdplane::fuzz::write_file(path, reinterpret_cast<const uint8_t*>(ppm.data()), ppm.size());
}

std::vector<uint8_t> read_all(const fs::path& path) {
  return bd::read_file_bytes(path.string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  State& s = state();
  s.root = birdplane::fuzz::scratch_dir() / "tree";
  for (const char* cls : {"cat", "dog"}) {
    fs::create_directories(s.root / cls);
    write_ppm(s.root / cls / "a.ppm", cls[0] == 'c' ? 10 : 100);
    write_ppm(s.root / cls / "b.ppm", cls[0] == 'c' ? 50 : 150);
  }
  s.options.cache_dir = (birdplane::fuzz::scratch_dir() / "cache").string();
  bd::ImageFolderReport report;
  bd::read_image_folder(s.root.string(), s.options, &report);
  if (report.cache_file.empty()) {
    std::fprintf(stderr, "fuzz_image_folder_cache: no cache was written (%s)\n", report.cache_note.c_str());
    std::abort();
  }
  s.cache_file = report.cache_file;
  // The key is the header's "key" value.
  const auto bytes = read_all(s.cache_file);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data() + 8, 8);
  const auto j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(bytes.data() + 16), header_len));
  s.key = j.at("key").get<std::string>();
  if (s.key.size() != kKeyPlaceholder.size()) std::abort();
  // fix_checksum must give back the checksum the library wrote, or the fuzzer never gets past it.
  {
    std::vector<uint8_t> copy = bytes;
    std::memcpy(copy.data() + copy.size() - 8, kFixSum, 8);
    fix_checksum(copy);
    if (copy != bytes) {
      std::fprintf(stderr, "fuzz_image_folder_cache: fix_checksum no longer matches src/data/image_folder.cpp\n");
      std::abort();
    }
  }
  // BIRDPLANE_FUZZ_WRITE_SEED=FILE: writes the valid cache with its key replaced by the placeholder and
  // its checksum by "FIXSUM!!" (the committed seed).
  if (const char* out = std::getenv("BIRDPLANE_FUZZ_WRITE_SEED"); out && *out) {
    std::string text(bytes.begin(), bytes.end());
    text.replace(text.find(s.key), s.key.size(), kKeyPlaceholder);
    text.replace(text.size() - 8, 8, kFixSum);
    birdplane::fuzz::write_file(out, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  State& s = state();
  std::vector<uint8_t> file(data, data + size);
  {
    const std::string_view view(reinterpret_cast<const char*>(file.data()), file.size());
    const size_t at = view.find(kKeyPlaceholder);
    if (at != std::string_view::npos) std::memcpy(file.data() + at, s.key.data(), s.key.size());
  }
  fix_checksum(file);
  birdplane::fuzz::write_file(s.cache_file, file.data(), file.size());
  bd::ImageFolderReport report;
  bd::ImageSet set = [&] {
    try {
      return bd::read_image_folder(s.root.string(), s.options, &report);
    } catch (const birdplane::Error&) {
      __builtin_trap();  // the folder is fine: a bad cache must be decoded around, not an error
    }
  }();
  if (!report.from_cache) return 0;
  // Accepted: it must describe this folder.
  if (set.images().sizes() != at::IntArrayRef({4, 3, 4, 4})) __builtin_trap();
  if (set.labels().size(0) != 4) __builtin_trap();
  if (set.class_names() != std::vector<std::string>{"cat", "dog"}) __builtin_trap();
  if (set.labels().min().item<int64_t>() < 0 || set.labels().max().item<int64_t>() > 1) __builtin_trap();
  (void)set.images().sum().item<int64_t>();  // touch every pixel
  return 0;
}
