// libFuzzer target: the transform spec parser (--augment, `birdplane transforms --check`). Any text
// must parse into a pipeline or throw birdplane::Error naming the spec. A spec that parses and names
// only small numbers is then run on a tiny uint8 batch, as the trainer would: it must return a batch
// of the same shape or throw birdplane::Error (LibTorch errors, crashes and sanitizer reports are bugs).
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/spec.h"

namespace {

// Running a pipeline allocates what its sizes ask for (Resize(100000) is a 30 GB image, an honest
// request): only specs whose numbers are all small are run, so the fuzzer looks for bugs, not for
// memory limits.
bool only_small_numbers(const std::string& spec) {
  size_t digits = 0;
  for (size_t i = 0; i < spec.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(spec[i]);
    if (std::isdigit(c)) {
      if (++digits > 2) return false;
    } else {
      digits = 0;
      if ((c == 'e' || c == 'E') && i + 1 < spec.size() &&
          (std::isdigit(static_cast<unsigned char>(spec[i + 1])) || spec[i + 1] == '+' || spec[i + 1] == '-')) {
        return false;  // 1e9
      }
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  birdplane::transforms::TransformPtr pipeline;
  try {
    pipeline = birdplane::transforms::parse_transforms(spec, "fuzz");
    (void)pipeline->repr();
  } catch (const birdplane::Error&) {
    return 0;
  }
  if (!only_small_numbers(spec)) return 0;
  try {
    auto augment = birdplane::transforms::parse_augment(spec);
    at::Generator gen = at::detail::createCPUGenerator(size);
    const at::Tensor batch = torch::arange(2 * 3 * 16 * 16, torch::kLong).remainder(251).to(torch::kUInt8)
                                 .reshape({2, 3, 16, 16});
    const at::Tensor out = augment(batch, gen);
    if (out.sizes() != batch.sizes() || out.scalar_type() != torch::kUInt8) __builtin_trap();
  } catch (const birdplane::Error&) {
  }
  return 0;
}
