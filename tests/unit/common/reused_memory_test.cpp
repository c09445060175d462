// ReusedCpuMemory: large tensors freed inside the scope come back for the next tensor of their size;
// raw allocations (oneDNN's) work; small ones and everything after the scope are LibTorch's own.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/core/CPUAllocator.h>

#include "common/reused_memory.h"

using namespace birdplane;

TEST(ReusedCpuMemory, AFreedBlockServesTheNextTensorOfItsSize) {
  auto* before = c10::GetCPUAllocator();
  at::Tensor kept;
  {
    ReusedCpuMemory reuse;
    EXPECT_NE(c10::GetCPUAllocator(), before);
    void* first = nullptr;
    {
      auto t = torch::ones({3, 1000, 1000});  // 12 MB
      first = t.data_ptr();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2u << 20), 0u);  // huge-page aligned
    }
    auto again = torch::empty({3, 1000, 1000});
    EXPECT_EQ(again.data_ptr(), first);
    auto other = torch::empty({3, 1000, 1000});  // the block is taken: a new one
    EXPECT_NE(other.data_ptr(), first);
    auto raw = c10::GetCPUAllocator()->raw_allocate(5u << 20);
    ASSERT_NE(raw, nullptr);
    static_cast<char*>(raw)[(5u << 20) - 1] = 1;
    c10::GetCPUAllocator()->raw_deallocate(raw);
    auto small = c10::GetCPUAllocator()->raw_allocate(100);
    c10::GetCPUAllocator()->raw_deallocate(small);  // LibTorch's allocator's block, freed through ours
    kept = torch::full({2, 1000, 1000}, 7.0);
  }
  EXPECT_EQ(c10::GetCPUAllocator(), before);
  EXPECT_EQ(kept.sum().item<double>(), 7.0 * 2e6);  // outlives the scope; freed normally later
  kept = at::Tensor();
  auto after = torch::ones({3, 1000, 1000});
  EXPECT_EQ(after.sum().item<double>(), 3e6);
}
