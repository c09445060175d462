// Transform classes: thin wrappers that store options, call the function in functional.h and print
// themselves like torchvision's __repr__. All work on [C,H,W] and on batches [B,C,H,W].
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/transforms/functional.h"

namespace birdplane::transforms {

/// Base of every transform: a callable on a tensor that can describe itself.
class Transform {
 public:
  virtual ~Transform() = default;
  /// Applies the transform to one image [C,H,W] or a batch [B,C,H,W].
  virtual at::Tensor operator()(const at::Tensor& input) const = 0;
  /// Applies the transform drawing any random parameters from `gen` (one draw set per image of a
  /// batch, in image order). Deterministic transforms ignore `gen`; random ones override this and
  /// their operator() calls it with their own generator (or the default one).
  virtual at::Tensor forward(const at::Tensor& input, at::Generator& gen) const {
    (void)gen;
    return (*this)(input);
  }
  /// torchvision-style description, e.g. "Normalize(mean=[0.5], std=[0.25])".
  virtual std::string repr() const = 0;
};

using TransformPtr = std::shared_ptr<Transform>;

/// Base of the transforms that draw random parameters. They take the generator to draw from at
/// construction (not owned; nullptr: the default CPU generator) and implement forward(input, gen);
/// operator() is forward with that generator.
class RandomTransform : public Transform {
 public:
  /// forward(input, the generator given at construction, or the default CPU generator).
  at::Tensor operator()(const at::Tensor& input) const final;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override = 0;

 protected:
  explicit RandomTransform(at::Generator* generator) : generator_(generator) {}

  /// One `draw()` per image of `input` (once for [C,H,W]), in image order: the parameter sets
  /// forward passes to apply.
  template <typename Draw>
  static auto draw_per_image(const at::Tensor& input, Draw draw) {
    std::vector<decltype(draw())> out;
    const int64_t n = input.dim() == 4 ? input.size(0) : 1;
    for (int64_t i = 0; i < n; ++i) out.push_back(draw());
    return out;
  }

  at::Generator* generator_;
};

/// torchvision.transforms.ToTensor: uint8 HWC or CHW to float32 CHW in [0,1].
class ToTensor : public Transform {
 public:
  explicit ToTensor(functional::Layout layout = functional::Layout::kAuto) : layout_(layout) {}
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override { return "ToTensor()"; }

 private:
  functional::Layout layout_;
};

/// torchvision.transforms.Normalize(mean, std, inplace=False). A std of 0 is rejected at
/// construction.
class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std, bool inplace = false);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }

 private:
  std::vector<double> mean_, std_;
  bool inplace_;
};

/// torchvision.transforms.Lambda: any function from tensor to tensor.
class Lambda : public Transform {
 public:
  explicit Lambda(std::function<at::Tensor(const at::Tensor&)> fn, std::string name = "")
      : fn_(std::move(fn)), name_(std::move(name)) {}
  at::Tensor operator()(const at::Tensor& input) const override { return fn_(input); }
  std::string repr() const override { return "Lambda(" + name_ + ")"; }

 private:
  std::function<at::Tensor(const at::Tensor&)> fn_;
  std::string name_;
};

/// torchvision.transforms.Compose: applies its transforms in order.
class Compose : public Transform {
 public:
  Compose() = default;
  explicit Compose(std::vector<TransformPtr> transforms) : transforms_(std::move(transforms)) {}
  /// Appends a transform; returns *this for chaining.
  Compose& add(TransformPtr t) {
    transforms_.push_back(std::move(t));
    return *this;
  }
  at::Tensor operator()(const at::Tensor& input) const override;
  /// Each transform's forward(x, gen) in order, all drawing from `gen`.
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;
  const std::vector<TransformPtr>& transforms() const { return transforms_; }

 private:
  std::vector<TransformPtr> transforms_;
};

/// torchvision.transforms.RandomApply(transforms, p=0.5): applies all of `transforms` in order, or
/// none. Each image draws torch.rand(1) and is transformed when p >= the draw (torchvision skips when
/// p < torch.rand(1)); the inner transforms then draw for that image. A batch goes image by image, so
/// it equals N single-image calls on the same generator.
class RandomApply : public RandomTransform {
 public:
  explicit RandomApply(std::vector<TransformPtr> transforms, double p = 0.5, at::Generator* generator = nullptr);
  /// One draw per image: true means apply (p >= torch.rand(1), compared as float like torchvision's tensor).
  static std::vector<bool> get_params(at::Generator& gen, int64_t count, double p);
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::vector<TransformPtr> transforms_;
  double p_;
};

/// torchvision.transforms.RandomChoice(transforms, p=None): applies one of `transforms` per image,
/// picked with weights p (uniform when empty). torchvision draws from Python's `random` module, which
/// C++ cannot reproduce; here the pick is one torch.rand(1) u per image from the generator, and the
/// choice is the first k with u * sum(p) < p[0] + ... + p[k] (floor(u * n) without weights), the rule
/// Python's random.choices uses.
class RandomChoice : public RandomTransform {
 public:
  explicit RandomChoice(std::vector<TransformPtr> transforms, std::vector<double> p = {},
                        at::Generator* generator = nullptr);
  /// The index picked for one image.
  static int64_t get_params(at::Generator& gen, int64_t n, const std::vector<double>& p);
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::vector<TransformPtr> transforms_;
  std::vector<double> p_;
};

/// torchvision.transforms.RandomOrder(transforms): applies all of `transforms` in a random order per
/// image. torchvision shuffles with Python's `random`; here the order is torch.randperm(n) from the
/// generator, one per image.
class RandomOrder : public RandomTransform {
 public:
  explicit RandomOrder(std::vector<TransformPtr> transforms, at::Generator* generator = nullptr);
  /// The order for one image: torch.randperm(n).
  static std::vector<int64_t> get_params(at::Generator& gen, int64_t n);
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::vector<TransformPtr> transforms_;
};

}  // namespace birdplane::transforms
