#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/huge_buffers.h"

using namespace birdplane;

TEST(EmptyHuge, AFreedBufferIsHandedToTheNextRequestOfItsSize) {
  for (const int64_t n : {int64_t{3} << 20, int64_t{200} << 10}) {  // above and below the 2 MiB huge page
    void* first = nullptr;
    {
      auto a = data::empty_huge({n}, torch::kUInt8);
      first = a.data_ptr();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (n >= (2 << 20) ? (2 << 20) : 64), 0u);
      a.fill_(7);
    }
    auto b = data::empty_huge({n / 4}, torch::kFloat32);  // the same bytes, another shape and type
    EXPECT_EQ(b.data_ptr(), first);
    auto c = data::empty_huge({n}, torch::kUInt8);  // b still holds that one: a new buffer
    EXPECT_NE(c.data_ptr(), first);
    c.fill_(1);
    b.fill_(2.0f);
    EXPECT_EQ(c.sum().item<int64_t>(), n);  // separate storage
  }
}

TEST(EmptyHuge, BuffersAboveTheKeptSizeGoBackToTheSystem) {
  // 32 MiB is above the 16 MiB kept per buffer: nothing to reuse, and every request still works.
  for (int i = 0; i < 3; ++i) {
    auto a = data::empty_huge({int64_t{32} << 20}, torch::kUInt8);
    a.fill_(static_cast<uint8_t>(i));
    EXPECT_EQ(a[12345].item<uint8_t>(), i);
  }
}
