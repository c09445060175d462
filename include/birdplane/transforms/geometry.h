// Geometric transforms (torchvision.transforms.functional): crop, pad, flips, resize, center /
// five / ten crops, and the random crops and flips, on one image [C,H,W] or a batch [B,C,H,W].
// Random transforms draw their parameters with get_params(generator, ...) and apply them with a pure
// function, so a run is reproducible from its seed. The resampling warps (affine, rotate,
// perspective, elastic) are in warp.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include "birdplane/transforms/interpolation.h"
#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::functional {

/// torchvision's padding_mode: constant (fill), edge (repeat the border pixel), reflect (mirror
/// without repeating the border), symmetric (mirror repeating the border).
enum class PaddingMode { kConstant, kEdge, kReflect, kSymmetric };
/// "constant", "edge", "reflect" or "symmetric".
std::string to_string(PaddingMode mode);
/// The mode named by `name` (case-insensitive); throws Error naming the allowed words otherwise.
PaddingMode padding_mode_from_string(const std::string& name);

/// torchvision's padding argument: 1 value (all sides), 2 values (left/right, top/bottom) or 4
/// values (left, top, right, bottom), expanded to {left, top, right, bottom}. Negative values and
/// other lengths are errors naming `who`.
std::array<int64_t, 4> expand_padding(const std::vector<int64_t>& padding, const std::string& who = "pad");

/// torchvision F.crop: the [top, top+height) x [left, left+width) window. The window must lie
/// inside the image (torchvision pads outside it; pad first for that).
at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width);

/// torchvision F.pad with padding_mode="constant": `left`, `top`, `right`, `bottom` pixels of value
/// `fill` around the last two dims.
at::Tensor pad_constant(const at::Tensor& image, int64_t left, int64_t top, int64_t right, int64_t bottom,
                        double fill = 0);

/// torchvision F.pad on tensors: `padding` as in expand_padding, `fill` for the constant mode.
/// Any dtype for constant; edge/reflect/symmetric give exact copies of pixels (torchvision casts
/// uint8 to float and back for them, which changes nothing). reflect needs each pad smaller than the
/// image side it mirrors (torch's limit); symmetric needs it no larger than that side.
at::Tensor pad(const at::Tensor& image, const std::vector<int64_t>& padding, double fill = 0,
               PaddingMode mode = PaddingMode::kConstant);

/// torchvision F.hflip / F.vflip: mirror left-right / top-bottom.
at::Tensor hflip(const at::Tensor& image);
at::Tensor vflip(const at::Tensor& image);

/// torchvision's _compute_resized_output_size: {h, w} for `size` = {edge} (the smaller edge becomes
/// `edge`, the other keeps the aspect ratio, truncated; then capped at max_size) or {h, w}.
std::array<int64_t, 2> resized_output_size(int64_t height, int64_t width, const std::vector<int64_t>& size,
                                           std::optional<int64_t> max_size = std::nullopt);

/// torchvision F.resize on tensors (torch interpolate, align_corners=False for bilinear/bicubic,
/// antialias off by default as torchvision 0.14 tensors). uint8 is resized in float32, rounded
/// (bicubic clamped to [0,255] first) and cast back; float32/float64 stay in their dtype. Returns the
/// input itself when the size does not change.
at::Tensor resize(const at::Tensor& image, const std::vector<int64_t>& size,
                  InterpolationMode interpolation = InterpolationMode::kBilinear,
                  std::optional<int64_t> max_size = std::nullopt, bool antialias = false);

/// torchvision F.center_crop: the centered {h, w} window (1 value = square), offsets rounded half
/// to even like Python's round(). A crop larger than the image pads it with zeros first.
at::Tensor center_crop(const at::Tensor& image, const std::vector<int64_t>& size);

/// torchvision F.resized_crop: crop(top, left, height, width) then resize(size, interpolation).
at::Tensor resized_crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
                        const std::vector<int64_t>& size,
                        InterpolationMode interpolation = InterpolationMode::kBilinear, bool antialias = false);

/// torchvision F.five_crop: {top-left, top-right, bottom-left, bottom-right, center} crops of
/// size {h, w} (1 value = square); each keeps the input's rank.
std::vector<at::Tensor> five_crop(const at::Tensor& image, const std::vector<int64_t>& size);

/// torchvision F.ten_crop: five_crop of the image, then five_crop of its hflip (vflip when
/// `vertical_flip`): 10 tensors.
std::vector<at::Tensor> ten_crop(const at::Tensor& image, const std::vector<int64_t>& size,
                                 bool vertical_flip = false);

}  // namespace birdplane::transforms::functional

namespace birdplane::transforms {

/// torchvision.transforms.Resize(size, interpolation=bilinear, max_size=None, antialias=None):
/// functional::resize with the stored options (antialias None means off, as for tensors).
class Resize : public Transform {
 public:
  /// `size`: {edge} (smaller edge) or {h, w}; max_size only with one value and larger than it.
  explicit Resize(std::vector<int64_t> size,
                  functional::InterpolationMode interpolation = functional::InterpolationMode::kBilinear,
                  std::optional<int64_t> max_size = std::nullopt, std::optional<bool> antialias = std::nullopt);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  std::vector<int64_t> size_;
  functional::InterpolationMode interpolation_;
  std::optional<int64_t> max_size_;
  std::optional<bool> antialias_;
};

/// torchvision.transforms.CenterCrop(size): functional::center_crop.
class CenterCrop : public Transform {
 public:
  /// `size`: 1 value (square) or {h, w}, each 1 or more.
  explicit CenterCrop(std::vector<int64_t> size);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  std::array<int64_t, 2> size_;
};

/// torchvision.transforms.Pad(padding, fill=0, padding_mode="constant"): functional::pad.
class Pad : public Transform {
 public:
  /// `padding`: 1, 2 or 4 values as in functional::expand_padding.
  explicit Pad(std::vector<int64_t> padding, double fill = 0,
               functional::PaddingMode padding_mode = functional::PaddingMode::kConstant);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  std::vector<int64_t> padding_;
  double fill_;
  functional::PaddingMode padding_mode_;
};

/// Options of RandomCrop, named and defaulted like torchvision's arguments. Setters chain:
/// RandomCropOptions({24, 28}).padding({4}).padding_mode(PaddingMode::kReflect).
struct RandomCropOptions {
  /// `size`: 1 value (square) or {h, w}.
  RandomCropOptions(std::vector<int64_t> size) : size_(std::move(size)) {}  // NOLINT: implicit like torchvision's int
  RandomCropOptions(int64_t size) : size_({size}) {}                         // NOLINT
  TORCH_ARG(std::vector<int64_t>, size);
  /// Padding before cropping: none (empty, torchvision's None) or 1/2/4 values.
  TORCH_ARG(std::vector<int64_t>, padding) = {};
  /// Pad the image when it is smaller than the crop (torchvision pads both sides by the shortfall).
  TORCH_ARG(bool, pad_if_needed) = false;
  /// Value of constant padding.
  TORCH_ARG(double, fill) = 0;
  TORCH_ARG(functional::PaddingMode, padding_mode) = functional::PaddingMode::kConstant;
};

/// torchvision.transforms.RandomCrop(size, padding=None, pad_if_needed=False, fill=0,
/// padding_mode="constant"). On a batch every image gets its own window.
class RandomCrop : public RandomTransform {
 public:
  /// Where one image is cut: the window's top-left corner in the padded image.
  struct Params {
    int64_t top = 0, left = 0, height = 0, width = 0;
  };

  /// `size` x `size` output, `padding` pixels of `fill` on every side first (the original
  /// constructor; padding 0 prints as padding=0).
  RandomCrop(int64_t size, int64_t padding = 0, double fill = 0, at::Generator* generator = nullptr);
  /// Every torchvision option.
  explicit RandomCrop(const RandomCropOptions& options, at::Generator* generator = nullptr);

  /// torchvision's get_params: a uniform top in [0, H - out_h] and left in [0, W - out_w], drawn
  /// from `gen` (top first, as torch.randint does in torchvision 0.14); no draw when the sizes match.
  static Params get_params(at::Generator& gen, int64_t height, int64_t width, int64_t out_h, int64_t out_w);

  /// The padding, then pad_if_needed's, as torchvision's forward applies them.
  at::Tensor pad(const at::Tensor& input) const;
  /// True when a batch can be cropped straight from the unpadded images (uint8, contiguous, constant
  /// padding with a byte fill, no pad_if_needed): the same pixels without building the padded batch.
  bool fused_constant_path(const at::Tensor& input) const;
  /// The padding as {left, top, right, bottom} (zeros when none was given).
  std::array<int64_t, 4> padding_ltrb() const;
  /// Pads, then crops with the given parameters (one per image of a batch).
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  /// Draws one window per image from `gen` (in image order) and applies them.
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;

  std::string repr() const override;

 private:
  RandomCropOptions options_;
  int64_t out_h_, out_w_;
  bool padding_given_;
};

/// torchvision.transforms.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3/4, 4/3),
/// interpolation=bilinear, antialias=None): a random window of random area and aspect ratio,
/// resized to `size`. Each image of a batch gets its own window.
class RandomResizedCrop : public RandomTransform {
 public:
  using Params = RandomCrop::Params;
  /// `size`: 1 value (square) or {h, w}; scale and ratio are (min, max) with min <= max, ratio > 0.
  explicit RandomResizedCrop(std::vector<int64_t> size, std::array<double, 2> scale = {0.08, 1.0},
                             std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0},
                             functional::InterpolationMode interpolation = functional::InterpolationMode::kBilinear,
                             std::optional<bool> antialias = std::nullopt, at::Generator* generator = nullptr);
  /// torchvision's get_params: up to 10 tries of area * U(scale) and exp(U(log ratio)) (float32
  /// draws, then Python-style rounding of the side lengths), each try drawing top/left with randint
  /// when the window fits; otherwise the central crop clamped to the ratio range (no draw).
  static Params get_params(at::Generator& gen, int64_t height, int64_t width, std::array<double, 2> scale,
                           std::array<double, 2> ratio);
  /// Crops and resizes each image with its window.
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::array<int64_t, 2> size_;
  std::array<double, 2> scale_, ratio_;
  functional::InterpolationMode interpolation_;
  std::optional<bool> antialias_;
};

/// torchvision.transforms.FiveCrop(size), with the crops stacked: [C,H,W] gives [5,C,h,w] (what
/// torchvision's recipe builds with torch.stack) and [B,C,H,W] gives [B,5,C,h,w] (what a DataLoader
/// makes of those), in the order top-left, top-right, bottom-left, bottom-right, center.
class FiveCrop : public Transform {
 public:
  explicit FiveCrop(std::vector<int64_t> size);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  std::array<int64_t, 2> size_;
};

/// torchvision.transforms.TenCrop(size, vertical_flip=False), stacked like FiveCrop: [10,C,h,w] or
/// [B,10,C,h,w]; the last five are the crops of the flipped image.
class TenCrop : public Transform {
 public:
  explicit TenCrop(std::vector<int64_t> size, bool vertical_flip = false);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  std::array<int64_t, 2> size_;
  bool vertical_flip_;
};

/// torchvision.transforms.RandomHorizontalFlip(p): flips each image with probability p.
class RandomHorizontalFlip : public RandomTransform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5, at::Generator* generator = nullptr);
  /// One draw per image: true means flip (torch.rand(1) < p).
  static std::vector<bool> get_params(at::Generator& gen, int64_t count, double p);
  /// Flips the images whose flag is set.
  at::Tensor apply(const at::Tensor& input, const std::vector<bool>& flip) const;
  /// Draws one flag per image from `gen` and applies them.
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  double p_;
};

/// torchvision.transforms.RandomVerticalFlip(p): flips each image top-bottom with probability p.
class RandomVerticalFlip : public RandomTransform {
 public:
  explicit RandomVerticalFlip(double p = 0.5, at::Generator* generator = nullptr);
  /// One torch.rand(1) < p per image, as RandomHorizontalFlip.
  static std::vector<bool> get_params(at::Generator& gen, int64_t count, double p);
  /// Flips the images whose flag is set.
  at::Tensor apply(const at::Tensor& input, const std::vector<bool>& flip) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  double p_;
};

}  // namespace birdplane::transforms
