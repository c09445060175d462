// libFuzzer target: batches.meta.txt (the class names) as read by read_class_names and read_cifar10,
// beside a fixed, valid three-record test_batch.bin (labels 0, 2, 9). The names read must be ten
// different non-empty lines; asking read_cifar10 for two of them must keep exactly their images.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "fuzz_util.h"

namespace bd = birdplane::data;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  const std::vector<uint8_t> labels = {0, 2, 9};
  std::vector<uint8_t> batch(labels.size() * bd::kRecordBytes, 7);
  for (size_t i = 0; i < labels.size(); ++i) batch[i * bd::kRecordBytes] = labels[i];
  birdplane::fuzz::write_file(birdplane::fuzz::scratch_dir() / "test_batch.bin", batch.data(), batch.size());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = birdplane::fuzz::scratch_dir();
  birdplane::fuzz::write_file(dir / "batches.meta.txt", data, size);
  std::vector<std::string> names;
  try {
    names = bd::read_class_names(dir.string());
  } catch (const birdplane::Error&) {
    return 0;
  }
  if (names.size() != 10) __builtin_trap();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) __builtin_trap();
    for (size_t k = 0; k < i; ++k) {
      if (names[k] == names[i]) __builtin_trap();  // a name twice is refused
    }
  }
  try {
    const auto all = bd::read_cifar10(dir.string(), bd::Split::kTest);
    if (all.images().size(0) != 3 || all.class_names() != names) __builtin_trap();
  } catch (const birdplane::Error&) {
    __builtin_trap();  // the names were accepted above, and the batch is valid
  }
  try {
    // Labels 9 and 0: both records with those labels, relabelled 0 and 1 in the order asked.
    const auto two = bd::read_cifar10(dir.string(), bd::Split::kTest, {names[9], names[0]});
    const auto n = two.images().size(0);
    if (n > 2 || two.class_names().size() != 2) __builtin_trap();
    if (n > 0 && two.labels().max().item<int64_t>() > 1) __builtin_trap();
    if (names[9] != names[0] && n != 2) __builtin_trap();
  } catch (const birdplane::Error&) {
    if (names[9] != names[0]) __builtin_trap();  // only a name given twice may be refused
  }
  return 0;
}
