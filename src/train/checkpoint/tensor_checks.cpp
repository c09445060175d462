#include "train/checkpoint/tensor_checks.h"

#include <cstring>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "birdplane/check.h"

namespace birdplane::train {

void check_tensor_storage(const at::Tensor& t, const std::string& path, const std::string& key) {
  if (!t.defined() || t.numel() == 0) return;
  BIRDPLANE_CHECK(t.has_storage(), "{} is damaged: the tensor {} has no storage", path, key);
  int64_t last = t.storage_offset();
  BIRDPLANE_CHECK(last >= 0, "{} is damaged: the tensor {} starts before its storage", path, key);
  for (int64_t d = 0; d < t.dim(); ++d) {
    BIRDPLANE_CHECK(t.stride(d) >= 0, "{} is damaged: the tensor {} has a negative stride", path, key);
    last += (t.size(d) - 1) * t.stride(d);
  }
  const auto need = static_cast<uint64_t>(last + 1) * static_cast<uint64_t>(t.element_size());
  const auto have = static_cast<uint64_t>(t.storage().nbytes());
  BIRDPLANE_CHECK(have >= need,
                  "{} is damaged: the tensor {} ({} {}) needs {} bytes of data, the file holds {}", path, key,
                  c10::toString(t.scalar_type()), c10::str(t.sizes()), need, have);
}

uint64_t tensors_checksum(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.detach().cpu().contiguous();
    const std::string head = fmt::format("{}|{}|{}|", name, c10::toString(t.scalar_type()), c10::str(t.sizes()));
    mix(head.data(), head.size());
    // Eight bytes at a time: the byte-wise hash would take ~15 ms on book-large's weights.
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    const size_t size = static_cast<size_t>(t.nbytes());
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    mix(p + i, size - i);
  }
  return h;
}

}  // namespace birdplane::train
