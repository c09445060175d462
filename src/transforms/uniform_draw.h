// Private to the library: torch.empty(1).uniform_(low, high).item() drawn by torch's own kernel.
// random.h's uniform() computes x * (to - from) + from without fused multiply-add, while LibTorch's
// CPU kernel is compiled for AVX2/AVX-512 and fuses it, so for ranges other than [0, 1) the two can
// differ in the last bit of the float. Running the real kernel on a one-element tensor matches
// torchvision's draws bit for bit on any CPU.
#pragma once

#include <ATen/ATen.h>

namespace birdplane::transforms::detail {

/// torch.empty(1).uniform_(low, high).item() from `gen`: a float32 value.
inline float torch_uniform(at::Generator& gen, double low, double high) {
  return at::empty({1}, at::kFloat).uniform_(low, high, gen).item<float>();
}

}  // namespace birdplane::transforms::detail
