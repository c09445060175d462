// Random draws that reproduce torchvision's: each helper takes the generator to draw from and
// consumes it exactly as the torch call named in its comment does on a CPU generator, so a
// transform seeded like torchvision's (torch.manual_seed(s)) draws the same parameters.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>

namespace birdplane::transforms {

/// `*gen` when given, otherwise the (thread-local handle to the) default CPU generator.
at::Generator& generator_or_default(at::Generator* gen);

/// torch.randint(low, high, (1,)).item(): uniform in [low, high).
int64_t randint(at::Generator& gen, int64_t low, int64_t high);
/// randint(gen, 0, high).
inline int64_t randint(at::Generator& gen, int64_t high) { return randint(gen, 0, high); }

/// torch.rand(1).item(): a float32 uniform in [0, 1).
float rand_float(at::Generator& gen);

/// torch.empty(1).uniform_(low, high).item(): a float32 uniform in [low, high).
float uniform(at::Generator& gen, double low, double high);

/// torch.randperm(n) on a CPU generator.
std::vector<int64_t> randperm(at::Generator& gen, int64_t n);

}  // namespace birdplane::transforms
