// Conversions and the remaining tensor transforms of torchvision 0.14: pil_to_tensor (HWC bytes to
// CHW), convert_image_dtype, erase / RandomErasing and linear_transformation / LinearTransformation.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::functional {

/// torchvision F.pil_to_tensor for arrays: uint8 [H,W,C] (or [B,H,W,C]) to uint8 [C,H,W] (or
/// [B,C,H,W]), values unchanged. [H,W] gives [1,H,W].
at::Tensor pil_to_tensor(const at::Tensor& image_hwc);

/// torchvision F.convert_image_dtype: int -> float divides by the int type's max (255 for uint8);
/// float -> int multiplies by (max + 1 - 0.001) and truncates; int -> int shifts by whole factors;
/// float -> float casts. float32 -> int32/int64 and float64 -> int64 are refused as unsafe (as torchvision).
at::Tensor convert_image_dtype(const at::Tensor& image, c10::ScalarType dtype = c10::kFloat);

/// torchvision F.erase: a copy of `image` (or `image` itself with inplace) whose rows [i, i+h) and
/// columns [j, j+w) are set to `value` (broadcast: a [C,1,1], [C,h,w] or one-element tensor).
at::Tensor erase(const at::Tensor& image, int64_t i, int64_t j, int64_t h, int64_t w, const at::Tensor& value,
                 bool inplace = false);

/// torchvision's LinearTransformation on a float image [C,H,W] or batch [B,C,H,W]: each image is
/// flattened to D = C*H*W values x, and (x - mean_vector) @ transformation_matrix [D,D] is reshaped back.
at::Tensor linear_transformation(const at::Tensor& image, const at::Tensor& transformation_matrix,
                                 const at::Tensor& mean_vector);

}  // namespace birdplane::transforms::functional

namespace birdplane::transforms {

/// torchvision.transforms.PILToTensor for HWC uint8 arrays: see functional::pil_to_tensor.
class PILToTensor : public Transform {
 public:
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override { return "PILToTensor()"; }
};

/// torchvision.transforms.ConvertImageDtype(dtype): see functional::convert_image_dtype.
class ConvertImageDtype : public Transform {
 public:
  explicit ConvertImageDtype(c10::ScalarType dtype) : dtype_(dtype) {}
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  c10::ScalarType dtype_;
};

/// torchvision.transforms.RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0,
/// inplace=False). `value` holds one number, one per channel, or is empty with random_value for
/// torchvision's value="random" (standard normal noise, drawn inside get_params).
class RandomErasing : public RandomTransform {
 public:
  /// Where and what one image gets. `erase` false: the p draw said no (nothing else was drawn).
  /// When no box fits in 10 attempts, torchvision "erases" the whole image with itself: then
  /// whole_image is true and the image is left as is.
  struct Params {
    bool erase = false;
    bool whole_image = false;
    int64_t i = 0, j = 0, h = 0, w = 0;
    at::Tensor value;  ///< [C,h,w] noise or [n,1,1] values (float32)
  };
  RandomErasing(double p = 0.5, std::array<double, 2> scale = {0.02, 0.33}, std::array<double, 2> ratio = {0.3, 3.3},
                std::vector<double> value = {0}, bool random_value = false, bool inplace = false,
                at::Generator* generator = nullptr);
  /// torchvision's get_params for an image of `channels` x `height` x `width`: up to 10 attempts of
  /// (uniform_(scale) area, exp(uniform_(log ratio)) aspect, h/w rounded half to even, then when it
  /// fits: normal_() noise for a random value, then randint top, randint left).
  static Params get_params(at::Generator& gen, int64_t channels, int64_t height, int64_t width,
                           std::array<double, 2> scale, std::array<double, 2> ratio,
                           const std::vector<double>& value, bool random_value);
  /// One torch.rand(1) < p, then get_params when it passes: what torchvision's forward() draws.
  Params draw(at::Generator& gen, int64_t channels, int64_t height, int64_t width) const;
  /// Erases each image with its parameters.
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  double p_;
  std::array<double, 2> scale_, ratio_;
  std::vector<double> value_;
  bool random_value_, inplace_;
};

/// torchvision.transforms.LinearTransformation(transformation_matrix [D,D], mean_vector [D]).
class LinearTransformation : public Transform {
 public:
  LinearTransformation(at::Tensor transformation_matrix, at::Tensor mean_vector);
  at::Tensor operator()(const at::Tensor& input) const override;
  std::string repr() const override;

 private:
  at::Tensor matrix_, mean_;
};

}  // namespace birdplane::transforms
