#include "common/memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include <torch/torch.h>

namespace birdplane::data {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

at::Tensor empty_huge(at::IntArrayRef sizes, c10::ScalarType dtype) {
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < kHugePage) return torch::empty(sizes, torch::dtype(dtype));
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, rounded) != 0) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // advisory: ignored where THP is off
  return torch::from_blob(p, sizes, [](void* q) { std::free(q); }, torch::dtype(dtype));
}

at::Tensor packed_images(const at::Tensor& x) {
  const bool packed = x.stride(3) == 1 && x.stride(2) == x.size(3) && x.stride(1) == x.size(2) * x.size(3);
  return packed ? x : x.contiguous();
}

}  // namespace birdplane::data
