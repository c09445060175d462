// Photometric transforms (torchvision.transforms.functional on tensors, 0.14): grayscale,
// brightness / contrast / saturation / hue / gamma / sharpness, invert, posterize, solarize,
// autocontrast, equalize and Gaussian blur, on one image [C,H,W] or a batch [B,C,H,W] with C = 1 or 3,
// uint8 or float32 (float images live in [0,1]). Each function performs the same tensor operations in
// the same order as torchvision's functional_tensor.py, so results are equal, not merely close.
// The random classes draw with get_params(generator, ...) exactly as torchvision's forward() does.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::functional {

/// torchvision F.rgb_to_grayscale: L = 0.2989 R + 0.587 G + 0.114 B computed in float and cast back
/// (truncated for uint8, as torchvision's tensor path does). One-channel input is copied. Returns
/// `num_output_channels` (1 or 3) identical channels.
at::Tensor rgb_to_grayscale(const at::Tensor& image, int64_t num_output_channels = 1);

/// torchvision F.adjust_brightness: blends with black, factor * x clamped to the dtype's range.
at::Tensor adjust_brightness(const at::Tensor& image, double brightness_factor);
/// torchvision F.adjust_contrast: blends with the mean of the (truncated) grayscale image, per image.
at::Tensor adjust_contrast(const at::Tensor& image, double contrast_factor);
/// torchvision F.adjust_saturation: blends with the grayscale image (one-channel input unchanged).
at::Tensor adjust_saturation(const at::Tensor& image, double saturation_factor);
/// torchvision F.adjust_hue: shifts the hue by hue_factor in [-0.5, 0.5] turns through torchvision's
/// RGB -> HSV -> RGB; uint8 goes through x / 255 and back with x * 255 truncated.
at::Tensor adjust_hue(const at::Tensor& image, double hue_factor);
/// torchvision F.adjust_gamma: gain * x^gamma on [0,1] values, clamped (uint8 via convert_image_dtype).
at::Tensor adjust_gamma(const at::Tensor& image, double gamma, double gain = 1);
/// torchvision F.adjust_sharpness: blends with a 3x3 smoothed copy (kernel 1 1 1 / 1 5 1 / 1 1 1, /13)
/// whose border pixels are the original ones. Images 2 pixels or less across are returned as is.
at::Tensor adjust_sharpness(const at::Tensor& image, double sharpness_factor);
/// torchvision F.invert: 255 - x (uint8) or 1 - x (float).
at::Tensor invert(const at::Tensor& image);
/// torchvision F.posterize: keeps the top `bits` (0..8) bits of each uint8 value.
at::Tensor posterize(const at::Tensor& image, int64_t bits);
/// torchvision F.solarize: inverts the values >= threshold (threshold at most 255 for uint8, 1 for float).
at::Tensor solarize(const at::Tensor& image, double threshold);
/// torchvision F.autocontrast: stretches each channel of each image to the full range; flat channels
/// are unchanged.
at::Tensor autocontrast(const at::Tensor& image);
/// torchvision F.equalize: per-channel histogram equalization of a uint8 image with torchvision's
/// lookup table (step = sum of the histogram without its last nonzero bin / 255, floored).
at::Tensor equalize(const at::Tensor& image);
/// torchvision F.gaussian_blur: reflect padding of kernel_size / 2, then a depthwise conv2d with the
/// outer product of two normalized 1-D Gaussians ({kx, ky} odd and positive, sigma {sx, sy} > 0).
/// Without sigma, sigma = 0.15 * k + 0.35 as torchvision. uint8 is rounded back.
at::Tensor gaussian_blur(const at::Tensor& image, std::array<int64_t, 2> kernel_size,
                         std::optional<std::array<double, 2>> sigma = std::nullopt);

}  // namespace birdplane::transforms::functional

namespace birdplane::transforms {

/// Base of the transforms that apply a fixed function to each image with probability p
/// (RandomInvert, RandomEqualize, ...): one torch.rand(1) per image, in image order.
class RandomFlagTransform : public RandomTransform {
 public:
  /// One draw per image: true means apply. With `item_compare` the draw is compared as
  /// torch.rand(1).item() < p (double), otherwise as the tensor comparison torch.rand(1) < p (float).
  static std::vector<bool> get_params(at::Generator& gen, int64_t count, double p, bool item_compare = true);
  /// Applies the function to the images whose flag is set (one flag per image of a batch).
  at::Tensor apply(const at::Tensor& input, const std::vector<bool>& flags) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  double p() const { return p_; }

 protected:
  RandomFlagTransform(const char* name, double p, at::Generator* generator, bool item_compare = true);
  /// The function applied to the chosen images (a batch [N,C,H,W] or one image).
  virtual at::Tensor apply_all(const at::Tensor& x) const = 0;

  double p_;
  bool item_compare_;
};

/// torchvision.transforms.Grayscale(num_output_channels=1).
class Grayscale : public Transform {
 public:
  explicit Grayscale(int64_t num_output_channels = 1);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  int64_t num_output_channels_;
};

/// torchvision.transforms.RandomGrayscale(p=0.1): grayscale with as many channels as the input.
class RandomGrayscale : public RandomFlagTransform {
 public:
  explicit RandomGrayscale(double p = 0.1, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;
};

/// torchvision.transforms.RandomInvert(p=0.5).
class RandomInvert : public RandomFlagTransform {
 public:
  explicit RandomInvert(double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;
};

/// torchvision.transforms.RandomPosterize(bits, p=0.5), uint8 only.
class RandomPosterize : public RandomFlagTransform {
 public:
  explicit RandomPosterize(int64_t bits, double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;

 private:
  int64_t bits_;
};

/// torchvision.transforms.RandomSolarize(threshold, p=0.5).
class RandomSolarize : public RandomFlagTransform {
 public:
  explicit RandomSolarize(double threshold, double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;

 private:
  double threshold_;
};

/// torchvision.transforms.RandomAdjustSharpness(sharpness_factor, p=0.5).
class RandomAdjustSharpness : public RandomFlagTransform {
 public:
  explicit RandomAdjustSharpness(double sharpness_factor, double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;

 private:
  double factor_;
};

/// torchvision.transforms.RandomAutocontrast(p=0.5).
class RandomAutocontrast : public RandomFlagTransform {
 public:
  explicit RandomAutocontrast(double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;
};

/// torchvision.transforms.RandomEqualize(p=0.5), uint8 only.
class RandomEqualize : public RandomFlagTransform {
 public:
  explicit RandomEqualize(double p = 0.5, at::Generator* generator = nullptr);
  std::string repr() const override;

 protected:
  at::Tensor apply_all(const at::Tensor& x) const override;
};

/// A ColorJitter option: a number x (the range [max(0, center - x), center + x]) or a range [lo, hi].
struct JitterRange {
  JitterRange(double x = 0) : value{x}, is_range(false) {}  // NOLINT: implicit like Python's number
  JitterRange(double lo, double hi) : value{lo, hi}, is_range(true) {}
  std::vector<double> value;
  bool is_range;
};

/// torchvision.transforms.ColorJitter(brightness=0, contrast=0, saturation=0, hue=0). A number x gives
/// factors in [max(0, 1 - x), 1 + x] (hue: [-x, x], x <= 0.5); a range is used as given. A range of
/// exactly the identity (1, 1) or hue (0, 0) is skipped and draws nothing, as in torchvision.
class ColorJitter : public RandomTransform {
 public:
  /// What one image gets: the order of the four adjustments and the factors drawn (unset = skipped).
  struct Params {
    std::array<int64_t, 4> order{0, 1, 2, 3};
    std::optional<double> brightness, contrast, saturation, hue;
  };
  ColorJitter(JitterRange brightness = 0, JitterRange contrast = 0, JitterRange saturation = 0, JitterRange hue = 0,
              at::Generator* generator = nullptr);
  /// torchvision's get_params: torch.randperm(4), then one torch.empty(1).uniform_(lo, hi) per
  /// active option in the order brightness, contrast, saturation, hue.
  static Params get_params(at::Generator& gen, const std::optional<std::array<double, 2>>& brightness,
                           const std::optional<std::array<double, 2>>& contrast,
                           const std::optional<std::array<double, 2>>& saturation,
                           const std::optional<std::array<double, 2>>& hue);
  /// Applies one parameter set per image.
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;
  /// The checked ranges (unset when the option does nothing).
  const std::optional<std::array<double, 2>>& brightness() const { return brightness_; }
  const std::optional<std::array<double, 2>>& contrast() const { return contrast_; }
  const std::optional<std::array<double, 2>>& saturation() const { return saturation_; }
  const std::optional<std::array<double, 2>>& hue() const { return hue_; }

 private:
  std::optional<std::array<double, 2>> brightness_, contrast_, saturation_, hue_;
};

/// torchvision.transforms.GaussianBlur(kernel_size, sigma=(0.1, 2.0)): each image gets its own sigma,
/// torch.empty(1).uniform_(sigma_min, sigma_max), used for both directions.
class GaussianBlur : public RandomTransform {
 public:
  /// kernel_size {kx, ky} odd and positive; sigma {min, max} with 0 < min <= max.
  GaussianBlur(std::array<int64_t, 2> kernel_size, std::array<double, 2> sigma = {0.1, 2.0},
               at::Generator* generator = nullptr);
  /// One sigma: torch.empty(1).uniform_(sigma_min, sigma_max).item().
  static double get_params(at::Generator& gen, double sigma_min, double sigma_max);
  /// Blurs each image with its sigma.
  at::Tensor apply(const at::Tensor& input, const std::vector<double>& sigmas) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::array<int64_t, 2> kernel_size_;
  std::array<double, 2> sigma_;
};

}  // namespace birdplane::transforms
