#include "common/reused_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

namespace birdplane {
namespace {

constexpr size_t kSmall = size_t{1} << 20;  // below this, LibTorch's own allocator
constexpr size_t kAlign = size_t{2} << 20;  // huge-page size and alignment

class CachingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    if (n < kSmall) return previous_->allocate(n);
    const size_t size = (n + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
      }
    }
    if (!p) {
      p = std::aligned_alloc(kAlign, size);
      if (!p) throw std::bad_alloc();
      madvise(p, size, MADV_HUGEPAGE);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    // The context is the pointer itself, as raw_allocate()/raw_deallocate() (oneDNN's scratch memory)
    // require.
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void install() {
    std::lock_guard<std::mutex> lock(mutex_);
    previous_ = c10::GetCPUAllocator();
    active_ = true;
    c10::SetCPUAllocator(this, /*priority=*/0);  // the default allocator's priority: it replaces it
  }

  void uninstall() {
    std::lock_guard<std::mutex> lock(mutex_);
    c10::SetCPUAllocator(previous_, 0);
    active_ = false;
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
  }

  static CachingAllocator& instance() {
    static auto* a = new CachingAllocator;  // never destroyed: tensors may outlive every scope
    return *a;
  }

 private:
  // Frees a block of ours (back to the cache while installed), or a small one of the previous
  // allocator's that came to us through raw_deallocate.
  static void release(void* p) {
    auto& a = instance();
    c10::DeleterFnPtr other = nullptr;
    {
      std::lock_guard<std::mutex> lock(a.mutex_);
      auto it = a.live_.find(p);
      if (it == a.live_.end()) {
        other = a.previous_ ? a.previous_->raw_deleter() : nullptr;
      } else {
        const size_t size = it->second;
        a.live_.erase(it);
        if (a.active_) {
          a.free_[size].push_back(p);
          return;
        }
      }
    }
    if (other) other(p);
    else std::free(p);
  }

  mutable std::mutex mutex_;
  mutable std::unordered_map<size_t, std::vector<void*>> free_;
  mutable std::unordered_map<void*, size_t> live_;
  c10::Allocator* previous_ = nullptr;
  bool active_ = false;
};

std::mutex g_scopes_mutex;
int g_scopes = 0;

}  // namespace

ReusedCpuMemory::ReusedCpuMemory() {
  std::lock_guard<std::mutex> lock(g_scopes_mutex);
  if (g_scopes++ == 0) CachingAllocator::instance().install();
}

ReusedCpuMemory::~ReusedCpuMemory() {
  std::lock_guard<std::mutex> lock(g_scopes_mutex);
  if (--g_scopes == 0) CachingAllocator::instance().uninstall();
}

}  // namespace birdplane
