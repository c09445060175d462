#include "common/huge_buffers.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>
#include <new>

#include <torch/torch.h>

namespace birdplane::data {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kSmallAlign = 64;

// Freed buffers kept for the next request of the same size. The batch loader asks for buffers of one
// size batch after batch, and on this kind of VM a fresh buffer costs its page faults again every
// time; a kept one is already mapped (and often still in the cache). Bounded: only buffers up to
// kMaxKept bytes, at most kMaxHeld bytes in all; the rest go back to the system.
class BufferPool {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); ++i) {
        if (free_[i].first != bytes) continue;
        void* p = free_[i].second;
        free_[i] = free_.back();
        free_.pop_back();
        held_ -= bytes;
        return p;
      }
    }
    const size_t align = bytes >= kHugePage ? kHugePage : kSmallAlign;
    void* p = nullptr;
    if (posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
    if (bytes >= kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
    return p;
  }

  void give(void* p, size_t bytes) {
    if (bytes <= kMaxKept) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (held_ + bytes <= kMaxHeld) {
        free_.emplace_back(bytes, p);
        held_ += bytes;
        return;
      }
    }
    std::free(p);
  }

 private:
  static constexpr size_t kMaxKept = size_t{16} << 20;
  static constexpr size_t kMaxHeld = size_t{64} << 20;
  std::mutex mutex_;
  std::vector<std::pair<size_t, void*>> free_;
  size_t held_ = 0;
};

// Never destroyed: a tensor may be freed during static destruction, after a pool object would be gone.
BufferPool& pool() {
  static auto* p = new BufferPool;
  return *p;
}

}  // namespace

at::Tensor empty_huge(at::IntArrayRef sizes, c10::ScalarType dtype) {
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(numel) * c10::elementSize(dtype));
  const size_t unit = bytes >= kHugePage ? kHugePage : 4096;
  const size_t rounded = (bytes + unit - 1) / unit * unit;
  void* p = pool().take(rounded);
  return torch::from_blob(p, sizes, [rounded](void* q) { pool().give(q, rounded); }, torch::dtype(dtype));
}

at::Tensor packed_images(const at::Tensor& x) {
  const bool packed = x.stride(3) == 1 && x.stride(2) == x.size(3) && x.stride(1) == x.size(2) * x.size(3);
  return packed ? x : x.contiguous();
}

}  // namespace birdplane::data
