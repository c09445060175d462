// libFuzzer target: read_cifar10 on a fuzzed test_batch.bin. The first input byte picks how the rest
// becomes the file (as given, or cut/padded to whole 3073-byte records so that the label checks and
// the copying run) and which classes are asked for; the file is written into a scratch folder and
// read back. The result must be a consistent ImageSet or a birdplane::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "fuzz_util.h"

namespace {

namespace bd = birdplane::data;

const std::vector<std::vector<std::string>> kClassChoices = {
    {}, {"airplane", "bird"}, {"truck", "airplane", "cat"}, {"bird", "bird"}, {"zebra"}, {""}};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  const auto dir = birdplane::fuzz::scratch_dir();
  const auto path = dir / "test_batch.bin";
  if (mode & 1) {
    // Whole records: the bytes given, repeated to fill 1 to 4 records.
    const int64_t records = 1 + ((mode >> 1) & 3);
    std::vector<uint8_t> file(static_cast<size_t>(records * bd::kRecordBytes), 0);
    for (size_t i = 0; i < file.size() && size > 0; ++i) file[i] = data[i % size];
    birdplane::fuzz::write_file(path, file.data(), file.size());
  } else {
    birdplane::fuzz::write_file(path, data, size);
  }
  const auto& classes = kClassChoices[(mode >> 3) % kClassChoices.size()];
  bd::ChannelStats stats;
  const bool want_stats = (mode & 0x80) != 0;
  try {
    const bd::ImageSet set = bd::read_cifar10(dir.string(), bd::Split::kTest, classes, want_stats ? &stats : nullptr);
    const auto n = set.images().size(0);
    if (set.images().sizes() != at::IntArrayRef({n, 3, 32, 32})) __builtin_trap();
    if (set.labels().size(0) != n) __builtin_trap();
    const auto n_classes = static_cast<int64_t>(classes.empty() ? 10 : classes.size());
    if (n > 0 && (set.labels().min().item<int64_t>() < 0 || set.labels().max().item<int64_t>() >= n_classes)) {
      __builtin_trap();
    }
  } catch (const birdplane::Error&) {
  }
  return 0;
}
