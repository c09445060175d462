#include "birdplane/transforms/transforms.h"


#include <fmt/format.h>
#include <fmt/ranges.h>

#include "birdplane/check.h"

namespace birdplane::transforms {

at::Tensor ToTensor::operator()(const at::Tensor& input) const {
  return functional::to_tensor(input, layout_);
}

Normalize::Normalize(std::vector<double> mean, std::vector<double> std, bool inplace)
    : mean_(std::move(mean)), std_(std::move(std)), inplace_(inplace) {
  BIRDPLANE_CHECK(!mean_.empty() && !std_.empty(), "Normalize needs at least one mean and one std");
  BIRDPLANE_CHECK(mean_.size() == std_.size() || mean_.size() == 1 || std_.size() == 1,
                  "Normalize: mean has {} values and std {}; give the same number", mean_.size(),
                  std_.size());
  functional::check_std(std_);
}

at::Tensor Normalize::operator()(const at::Tensor& input) const {
  return functional::normalize(input, mean_, std_, inplace_);
}

std::string Normalize::repr() const {
  return fmt::format("Normalize(mean={}, std={})", mean_, std_);
}

at::Tensor Compose::operator()(const at::Tensor& input) const {
  at::Tensor x = input;
  for (const auto& t : transforms_) x = (*t)(x);
  return x;
}

at::Tensor Compose::forward(const at::Tensor& input, at::Generator& gen) const {
  at::Tensor x = input;
  for (const auto& t : transforms_) x = t->forward(x, gen);
  return x;
}

std::string Compose::repr() const {
  std::string s = "Compose(\n";
  for (const auto& t : transforms_) s += "    " + t->repr() + "\n";
  return s + ")";
}

}  // namespace birdplane::transforms
