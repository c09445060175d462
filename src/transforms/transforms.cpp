#include "birdplane/transforms/transforms.h"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "birdplane/check.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"

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

at::Tensor RandomTransform::operator()(const at::Tensor& input) const {
  return forward(input, generator_or_default(generator_));
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

namespace {

// Runs `one(image, k)` on each image of a batch (or on the single image) in order and stacks the
// results. Images the function leaves alone come back as they were; all results must agree in shape
// and dtype.
template <typename Fn>
at::Tensor per_image(const at::Tensor& input, const std::string& name, Fn one) {
  if (input.dim() != 4) return one(input, 0);
  std::vector<at::Tensor> outs;
  bool changed = false;
  for (int64_t k = 0; k < input.size(0); ++k) {
    auto img = input[k];
    auto out = one(img, k);
    changed = changed || !out.is_same(img);
    outs.push_back(out);
  }
  if (!changed) return input;
  for (const auto& o : outs)
    BIRDPLANE_CHECK(o.sizes() == outs[0].sizes() && o.scalar_type() == outs[0].scalar_type(),
                    "{}: images of one batch came out with different shapes or types ({} {} vs {} {}); "
                    "the transforms it picks must keep the same output shape",
                    name, c10::toString(o.scalar_type()), fmt::join(o.sizes(), "x"),
                    c10::toString(outs[0].scalar_type()), fmt::join(outs[0].sizes(), "x"));
  return at::stack(outs);
}

std::string list_repr(const std::string& head, const std::vector<TransformPtr>& ts) {
  std::string s = head;
  for (const auto& t : ts) s += "\n    " + t->repr();
  return s + "\n)";
}

}  // namespace

RandomApply::RandomApply(std::vector<TransformPtr> transforms, double p, at::Generator* generator)
    : RandomTransform(generator), transforms_(std::move(transforms)), p_(p) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomApply: p is {}; a probability is between 0 and 1", p);
  for (const auto& t : transforms_) BIRDPLANE_CHECK(t != nullptr, "RandomApply: a transform in the list is null");
}

std::vector<bool> RandomApply::get_params(at::Generator& gen, int64_t count, double p) {
  std::vector<bool> out(static_cast<size_t>(count));
  // torchvision: `if self.p < torch.rand(1): return img` (p rounded to float for the tensor compare).
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = !(static_cast<float>(p) < rand_float(gen));
  return out;
}

at::Tensor RandomApply::forward(const at::Tensor& input, at::Generator& gen) const {
  return per_image(input, "RandomApply", [&](const at::Tensor& img, int64_t) {
    if (!get_params(gen, 1, p_)[0]) return img;
    at::Tensor x = img;
    for (const auto& t : transforms_) x = t->forward(x, gen);
    return x;
  });
}

std::string RandomApply::repr() const {
  return list_repr("RandomApply(\n    p=" + python_number(p_), transforms_);
}

RandomChoice::RandomChoice(std::vector<TransformPtr> transforms, std::vector<double> p, at::Generator* generator)
    : RandomTransform(generator), transforms_(std::move(transforms)), p_(std::move(p)) {
  BIRDPLANE_CHECK(!transforms_.empty(), "RandomChoice: needs at least one transform to choose from");
  for (const auto& t : transforms_) BIRDPLANE_CHECK(t != nullptr, "RandomChoice: a transform in the list is null");
  if (!p_.empty()) {
    BIRDPLANE_CHECK(p_.size() == transforms_.size(), "RandomChoice: p has {} weights for {} transforms; give one each",
                    p_.size(), transforms_.size());
    double total = 0;
    for (double w : p_) {
      BIRDPLANE_CHECK(w >= 0 && std::isfinite(w), "RandomChoice: the weight {} in p must be 0 or more", w);
      total += w;
    }
    BIRDPLANE_CHECK(total > 0, "RandomChoice: the weights in p add up to 0; at least one must be positive");
  }
}

int64_t RandomChoice::get_params(at::Generator& gen, int64_t n, const std::vector<double>& p) {
  const double u = rand_float(gen);
  if (p.empty()) return std::min<int64_t>(static_cast<int64_t>(std::floor(u * static_cast<double>(n))), n - 1);
  double total = 0;
  for (double w : p) total += w;
  double cum = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    cum += p[k];
    if (u * total < cum) return static_cast<int64_t>(k);
  }
  return static_cast<int64_t>(p.size()) - 1;
}

at::Tensor RandomChoice::forward(const at::Tensor& input, at::Generator& gen) const {
  return per_image(input, "RandomChoice", [&](const at::Tensor& img, int64_t) {
    const auto k = get_params(gen, static_cast<int64_t>(transforms_.size()), p_);
    return transforms_[static_cast<size_t>(k)]->forward(img, gen);
  });
}

std::string RandomChoice::repr() const {
  std::string p = "None";
  if (!p_.empty()) {
    p.clear();
    for (double w : p_) p += (p.empty() ? "" : ", ") + python_number(w);
    p = "[" + p + "]";
  }
  return list_repr("RandomChoice(", transforms_) + "(p=" + p + ")";
}

RandomOrder::RandomOrder(std::vector<TransformPtr> transforms, at::Generator* generator)
    : RandomTransform(generator), transforms_(std::move(transforms)) {
  for (const auto& t : transforms_) BIRDPLANE_CHECK(t != nullptr, "RandomOrder: a transform in the list is null");
}

std::vector<int64_t> RandomOrder::get_params(at::Generator& gen, int64_t n) { return randperm(gen, n); }

at::Tensor RandomOrder::forward(const at::Tensor& input, at::Generator& gen) const {
  if (transforms_.empty()) return input;
  return per_image(input, "RandomOrder", [&](const at::Tensor& img, int64_t) {
    at::Tensor x = img;
    for (auto k : get_params(gen, static_cast<int64_t>(transforms_.size())))
      x = transforms_[static_cast<size_t>(k)]->forward(x, gen);
    return x;
  });
}

std::string RandomOrder::repr() const { return list_repr("RandomOrder(", transforms_); }

}  // namespace birdplane::transforms
