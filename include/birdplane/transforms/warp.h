// Resampling warps (torchvision.transforms.functional on tensors): affine, rotate, perspective and
// elastic, all built like torchvision 0.14's tensor path: a sampling grid in normalized coordinates,
// one grid_sample (align_corners=False, zeros outside), and a fill colour blended in through an extra
// all-ones mask channel. uint8 images are warped in float32, rounded and cast back. Random classes
// draw one parameter set per image of a batch and warp the whole batch with one grid_sample.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/transforms/interpolation.h"
#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::functional {

/// Fill for pixels that come from outside the image: nullopt is torchvision's fill=None (plain
/// zero padding, no mask channel); otherwise one value for all channels or one per channel.
using Fill = std::optional<std::vector<double>>;

/// A point (x, y) in pixels.
using Point = std::array<int64_t, 2>;

/// torchvision's _get_inverse_affine_matrix(center, angle, translate, scale, shear, inverted=True):
/// the 2x3 matrix (row-major) mapping output pixels to input pixels, in float64. Angles in degrees.
std::array<double, 6> inverse_affine_matrix(std::array<double, 2> center, double angle,
                                            std::array<double, 2> translate, double scale,
                                            std::array<double, 2> shear);

/// torchvision F.affine on tensors: rotate by `angle` degrees (clockwise on screen), translate by
/// `translate` pixels, scale, shear by {sx, sy} degrees, about `center` (pixels; default the image
/// center). interpolation nearest or bilinear. [C,H,W] or [B,C,H,W], uint8/float32/float64.
at::Tensor affine(const at::Tensor& image, double angle, std::array<double, 2> translate, double scale,
                  std::array<double, 2> shear, InterpolationMode interpolation = InterpolationMode::kNearest,
                  const Fill& fill = std::nullopt, std::optional<std::array<double, 2>> center = std::nullopt);

/// torchvision F.rotate on tensors: counter-clockwise by `angle` degrees about `center` (default
/// the image center). With `expand` the output grows to hold the whole rotated image (its size
/// computed like torchvision's _compute_affine_output_size).
at::Tensor rotate(const at::Tensor& image, double angle, InterpolationMode interpolation = InterpolationMode::kNearest,
                  bool expand = false, std::optional<std::array<double, 2>> center = std::nullopt,
                  const Fill& fill = std::nullopt);

/// torchvision's _get_perspective_coeffs: the 8 coefficients of the projective map from `endpoints`
/// to `startpoints` (4 points each), solved in float32 with torch.linalg.lstsq(driver="gels") as
/// torchvision 0.14 does.
std::array<double, 8> perspective_coeffs(const std::array<Point, 4>& startpoints, const std::array<Point, 4>& endpoints);

/// torchvision F.perspective on tensors: moves the 4 `startpoints` (top-left, top-right,
/// bottom-right, bottom-left corners) to `endpoints`. interpolation nearest or bilinear.
at::Tensor perspective(const at::Tensor& image, const std::array<Point, 4>& startpoints,
                       const std::array<Point, 4>& endpoints,
                       InterpolationMode interpolation = InterpolationMode::kBilinear, const Fill& fill = std::nullopt);

/// torchvision F.elastic_transform on tensors: samples each output pixel at its own position plus
/// `displacement` [1,H,W,2] (float32, normalized coordinates, x then y). A batch shares the
/// displacement. interpolation nearest or bilinear.
at::Tensor elastic_transform(const at::Tensor& image, const at::Tensor& displacement,
                             InterpolationMode interpolation = InterpolationMode::kBilinear,
                             const Fill& fill = std::nullopt);

}  // namespace birdplane::transforms::functional

namespace birdplane::transforms {

/// torchvision.transforms.RandomRotation(degrees, interpolation=nearest, expand=False, center=None,
/// fill=0): rotates each image by an angle drawn uniformly from degrees. With expand, a batch must
/// come out the same size for every image (an error otherwise).
class RandomRotation : public RandomTransform {
 public:
  /// `degrees`: one value d >= 0 (the range [-d, d]) or {min, max} with min <= max. `fill`: one
  /// value or one per channel.
  explicit RandomRotation(std::vector<double> degrees,
                          functional::InterpolationMode interpolation = functional::InterpolationMode::kNearest,
                          bool expand = false, std::optional<std::array<double, 2>> center = std::nullopt,
                          std::vector<double> fill = {0}, at::Generator* generator = nullptr);
  /// torchvision's get_params: torch.empty(1).uniform_(min, max), as a float32 value.
  static double get_params(at::Generator& gen, std::array<double, 2> degrees);
  /// Rotates image i by angles[i].
  at::Tensor apply(const at::Tensor& input, const std::vector<double>& angles) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::array<double, 2> degrees_;
  functional::InterpolationMode interpolation_;
  bool expand_;
  std::optional<std::array<double, 2>> center_;
  std::vector<double> fill_;
};

/// torchvision.transforms.RandomAffine(degrees, translate=None, scale=None, shear=None,
/// interpolation=nearest, fill=0, center=None).
class RandomAffine : public RandomTransform {
 public:
  /// One image's draw: what functional::affine takes.
  struct Params {
    double angle = 0;
    std::array<int64_t, 2> translate{0, 0};
    double scale = 1;
    std::array<double, 2> shear{0, 0};
  };
  /// `degrees` as RandomRotation; `translate` {fx, fy} fractions in [0, 1] (empty: none); `scale`
  /// {min, max} > 0 (empty: 1); `shear` one value s >= 0 (x in [-s, s]), {xmin, xmax}, or {xmin,
  /// xmax, ymin, ymax} (empty: none).
  explicit RandomAffine(std::vector<double> degrees, std::vector<double> translate = {}, std::vector<double> scale = {},
                        std::vector<double> shear = {},
                        functional::InterpolationMode interpolation = functional::InterpolationMode::kNearest,
                        std::vector<double> fill = {0}, std::optional<std::array<double, 2>> center = std::nullopt,
                        at::Generator* generator = nullptr);
  /// torchvision's get_params for an image of `width` x `height`: angle, then tx, ty (rounded half
  /// to even), scale, shear x, shear y, each drawn only when its option is given.
  static Params get_params(at::Generator& gen, std::array<double, 2> degrees, const std::vector<double>& translate,
                           const std::vector<double>& scale, const std::vector<double>& shear, int64_t width,
                           int64_t height);
  /// Warps image i with params[i] (one grid_sample for the batch).
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::array<double, 2> degrees_;
  std::vector<double> translate_, scale_, shear_;
  functional::InterpolationMode interpolation_;
  std::vector<double> fill_;
  std::optional<std::array<double, 2>> center_;
};

/// torchvision.transforms.RandomPerspective(distortion_scale=0.5, p=0.5, interpolation=bilinear,
/// fill=0).
class RandomPerspective : public RandomTransform {
 public:
  /// One image's draw: whether to warp, and the corners (start = the image corners).
  struct Params {
    bool apply = false;
    std::array<functional::Point, 4> startpoints{}, endpoints{};
  };
  explicit RandomPerspective(double distortion_scale = 0.5, double p = 0.5,
                             functional::InterpolationMode interpolation = functional::InterpolationMode::kBilinear,
                             std::vector<double> fill = {0}, at::Generator* generator = nullptr);
  /// torchvision's get_params: 8 randint draws (top-left x, y, top-right x, y, bottom-right x, y,
  /// bottom-left x, y) within distortion_scale of half the image from each corner.
  static Params get_params(at::Generator& gen, int64_t width, int64_t height, double distortion_scale);
  /// What forward draws for one image: torch.rand(1) < p, then get_params only when true.
  static Params draw(at::Generator& gen, int64_t width, int64_t height, double distortion_scale, double p);
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  double distortion_scale_, p_;
  functional::InterpolationMode interpolation_;
  std::vector<double> fill_;
};

/// torchvision.transforms.ElasticTransform(alpha=50.0, sigma=5.0, interpolation=bilinear, fill=0).
/// torchvision blurs the noise with reflect padding of half the kernel (int(8 sigma + 1), made odd),
/// so the image must be larger than that half (sigma=5 needs at least 21x21).
class ElasticTransform : public RandomTransform {
 public:
  /// alpha and sigma: one value or {for x, for y}, each >= 0 (sigma both > 0 or both 0).
  explicit ElasticTransform(std::vector<double> alpha = {50.0}, std::vector<double> sigma = {5.0},
                            functional::InterpolationMode interpolation = functional::InterpolationMode::kBilinear,
                            double fill = 0, at::Generator* generator = nullptr);
  /// torchvision's get_params: dx = (rand([1,1,H,W]) * 2 - 1), gaussian-blurred when sigma > 0,
  /// times alpha[0] / H; then dy likewise (times alpha[1] / W); returns [1,H,W,2] float32.
  static at::Tensor get_params(at::Generator& gen, std::array<double, 2> alpha, std::array<double, 2> sigma,
                               int64_t height, int64_t width);
  /// Warps image i with displacements[i] ([1,H,W,2] each), one grid_sample for the batch.
  at::Tensor apply(const at::Tensor& input, const std::vector<at::Tensor>& displacements) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  std::array<double, 2> alpha_, sigma_;
  functional::InterpolationMode interpolation_;
  double fill_;
};

}  // namespace birdplane::transforms
