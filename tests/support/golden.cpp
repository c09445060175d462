#include "support/golden.h"

#include <stdexcept>

#include <torch/torch.h>

#include "support/fixtures.h"

namespace birdplane::fixtures {

Golden::Golden(const std::string& name) : path_(std::string(BIRDPLANE_SOURCE_DIR) + "/tests/golden/data/" + name) {
  const std::string bytes = read_file(path_);
  if (bytes.empty()) throw std::runtime_error("golden file " + path_ + " is missing; run tools/gen_golden.py");
  dict_ = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
}

at::Tensor Golden::operator[](const std::string& key) const {
  auto dict = dict_.toGenericDict();
  auto it = dict.find(c10::IValue(key));
  if (it == dict.end()) throw std::runtime_error("golden file " + path_ + " has no key " + key);
  return it->value().toTensor();
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace birdplane::fixtures
