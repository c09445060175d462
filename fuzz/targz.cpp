// libFuzzer target: installing CIFAR-10 from a .tar.gz (libarchive), the path `birdplane download`
// takes after the transfer. The input is the archive; ensure_cifar10 fetches it from a file:// URL
// (libcurl reads the local file, no network) with its MD5 given, so every input reaches extraction.
// It must install a folder that holds the six batch files with whole records, or throw
// birdplane::Error leaving nothing installed; nothing may be written outside the data folder.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include <ATen/Parallel.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/download.h"
#include "fuzz_util.h"

namespace fs = std::filesystem;
namespace bd = birdplane::data;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path scratch = birdplane::fuzz::scratch_dir();
  const fs::path archive = scratch / "input.tar.gz";
  const fs::path root = scratch / "data";
  birdplane::fuzz::write_file(archive, data, size);
  bd::DownloadOptions options;
  options.url = "file://" + archive.string();
  options.md5 = bd::md5_file(archive.string());
  options.require_full_size = false;
  options.max_extract_bytes = int64_t{8} << 20;  // small limits: the fuzzer probes them, cheaply
  options.max_entry_bytes = int64_t{4} << 20;
  bool installed = false;
  try {
    const std::string dir = bd::ensure_cifar10(root.string(), options);
    installed = true;
    if (!bd::is_installed(dir, options)) __builtin_trap();
    (void)bd::read_class_names(dir);
  } catch (const birdplane::Error&) {
  }
  // Only the data folder may have appeared beside the archive, and after a refusal it holds no
  // dataset (only the lock file, if anything).
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(scratch, ec)) {
    const auto name = entry.path().filename();
    if (name != "input.tar.gz" && name != "data") __builtin_trap();
  }
  if (!installed && fs::exists(root / bd::kFolderName, ec)) __builtin_trap();
  fs::remove_all(root, ec);
  return 0;
}
