// Small helpers the transform tests share.
#pragma once

#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include "birdplane/transforms/spec.h"
#include "birdplane/transforms/transforms.h"

namespace birdplane::fixtures {

/// A CPU generator seeded with `seed` (torch.manual_seed's counterpart for one transform call).
inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

/// A spec string and the transform it names, built from the classes directly. `changes`: whether that
/// transform alters the test batch at all (false only for a spec that is the identity by design), so
/// a case cannot pass by both sides doing nothing.
struct SpecCase {
  std::string spec;
  transforms::TransformPtr reference;
  bool changes = true;
};

/// Every spec parses as an --augment pipeline and gives back a uint8 batch of the same size as `x`,
/// equal value for value to what its reference transform gives for the same batch and seed (so a spec
/// whose arguments were misread, or that did nothing, fails).
inline void expect_specs_keep_uint8_batches(const std::vector<SpecCase>& cases, const at::Tensor& x) {
  for (const auto& c : cases) {
    auto aug = transforms::parse_augment(c.spec);
    auto g = seeded(9), g_ref = seeded(9);
    auto y = aug(x.clone(), g);
    EXPECT_EQ(y.sizes(), x.sizes()) << c.spec;
    EXPECT_EQ(y.scalar_type(), at::kByte) << c.spec;
    const auto want = c.reference->forward(x.clone(), g_ref);
    ASSERT_EQ(want.sizes(), x.sizes()) << c.spec << " (the reference)";
    EXPECT_TRUE(y.sizes() == want.sizes() && y.equal(want))
        << c.spec << ": differs from " << c.reference->repr() << " from the same seed";
    EXPECT_EQ(!want.equal(x), c.changes) << c.spec << ": the reference " << (c.changes ? "left" : "changed")
                                         << " the batch";
  }
}

}  // namespace birdplane::fixtures
