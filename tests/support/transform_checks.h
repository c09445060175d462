// Small helpers the transform tests share.
#pragma once

#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include "birdplane/transforms/spec.h"

namespace birdplane::fixtures {

/// A CPU generator seeded with `seed` (torch.manual_seed's counterpart for one transform call).
inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

/// Every spec parses as an --augment pipeline and gives back a uint8 batch of the same size as `x`.
inline void expect_specs_keep_uint8_batches(const std::vector<std::string>& specs, const at::Tensor& x) {
  for (const auto& s : specs) {
    auto aug = transforms::parse_augment(s);
    auto g = seeded(9);
    auto y = aug(x.clone(), g);
    EXPECT_EQ(y.sizes(), x.sizes()) << s;
    EXPECT_EQ(y.scalar_type(), at::kByte) << s;
  }
}

}  // namespace birdplane::fixtures
