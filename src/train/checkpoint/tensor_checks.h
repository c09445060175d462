// Checks on the tensors LibTorch has read from a model file (private): each one's storage bounds, and
// the checksum of the weights a checkpoint records.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace birdplane::train {

/// Throws birdplane::Error naming `path` and `key` when the tensor's strides or offset reach past its
/// storage (a data entry shorter than the shape, dtype and offset need), or a stride is negative.
void check_tensor_storage(const at::Tensor& t, const std::string& path, const std::string& key);

/// A 64-bit checksum of named tensors: names, dtypes, shapes and bytes, in the order given.
uint64_t tensors_checksum(const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace birdplane::train
