// Reads golden files written by tools/gen_golden.py (dicts of tensors saved by torch.save).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <torch/serialize.h>

namespace birdplane::fixtures {

/// A golden file from tests/golden/data/.
class Golden {
 public:
  explicit Golden(const std::string& name);
  /// The tensor stored under `key` (fails the test with a message when absent).
  at::Tensor operator[](const std::string& key) const;

 private:
  std::string path_;
  c10::IValue dict_;
};

/// Largest absolute difference between two tensors (as float64), for failure messages.
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

}  // namespace birdplane::fixtures
