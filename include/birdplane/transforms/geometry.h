// Geometric transforms (torchvision.transforms.functional): crop, constant pad, flips, and the
// random crop / flip used for CIFAR augmentation, on one image [C,H,W] or a batch [B,C,H,W] of any
// dtype. Random transforms draw their parameters with get_params(generator, ...) and apply them with
// a pure function, so a run is reproducible from its seed.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::functional {

/// torchvision F.crop: the [top, top+height) x [left, left+width) window. The window must lie
/// inside the image (torchvision pads outside it; pad first for that).
at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width);

/// torchvision F.pad with padding_mode="constant": `left`, `top`, `right`, `bottom` pixels of value
/// `fill` around the last two dims.
at::Tensor pad_constant(const at::Tensor& image, int64_t left, int64_t top, int64_t right, int64_t bottom,
                        double fill = 0);

/// torchvision F.hflip / F.vflip: mirror left-right / top-bottom.
at::Tensor hflip(const at::Tensor& image);
at::Tensor vflip(const at::Tensor& image);

}  // namespace birdplane::transforms::functional

namespace birdplane::transforms {

/// torchvision.transforms.RandomCrop(size, padding, pad_if_needed=False, fill, padding_mode="constant").
/// On a batch every image gets its own window.
class RandomCrop : public Transform {
 public:
  /// Where one image is cut: the window's top-left corner in the padded image.
  struct Params {
    int64_t top = 0, left = 0, height = 0, width = 0;
  };

  /// `size` x `size` output, `padding` pixels of `fill` on every side first.
  RandomCrop(int64_t size, int64_t padding = 0, double fill = 0, at::Generator* generator = nullptr);

  /// torchvision's get_params: a uniform top in [0, H - size] and left in [0, W - size], drawn
  /// from `gen` (top first, as torch.randint does in torchvision 0.14).
  static Params get_params(at::Generator& gen, int64_t height, int64_t width, int64_t out_h, int64_t out_w);

  /// Pads, then crops with the given parameters (one per image of a batch).
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  /// Draws one window per image from `gen` (in image order) and applies them.
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;

  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  int64_t size_, padding_;
  double fill_;
  at::Generator* generator_;
};

/// torchvision.transforms.RandomHorizontalFlip(p): flips each image with probability p.
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5, at::Generator* generator = nullptr);
  /// One draw per image: true means flip (torch.rand(1) < p).
  static std::vector<bool> get_params(at::Generator& gen, int64_t count, double p);
  /// Flips the images whose flag is set.
  at::Tensor apply(const at::Tensor& input, const std::vector<bool>& flip) const;
  /// Draws one flag per image from `gen` and applies them.
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  double p_;
  at::Generator* generator_;
};

}  // namespace birdplane::transforms
