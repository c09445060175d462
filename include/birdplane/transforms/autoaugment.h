// Automatic augmentation policies (torchvision.transforms.autoaugment, 0.14): AutoAugment,
// RandAugment, TrivialAugmentWide and AugMix on uint8 images [C,H,W] or batches [B,C,H,W] (C = 1 or 3).
// Every image draws its own operations from the generator, in image order, with the same torch calls
// in the same order as torchvision's forward() makes for that image alone, so a batch equals N
// single-image calls on one generator and each image equals torchvision's result under the same seed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/transforms/interpolation.h"
#include "birdplane/transforms/transforms.h"
#include "birdplane/transforms/warp.h"

namespace birdplane::transforms {

/// The operations torchvision's _apply_op knows, named as there ("ShearX", ..., "Identity").
enum class AugmentOp {
  kIdentity,
  kShearX,
  kShearY,
  kTranslateX,
  kTranslateY,
  kRotate,
  kBrightness,
  kColor,
  kContrast,
  kSharpness,
  kPosterize,
  kSolarize,
  kAutoContrast,
  kEqualize,
  kInvert,
};

/// torchvision's name of the operation, e.g. "ShearX".
std::string to_string(AugmentOp op);
/// The operation named `name` (exact torchvision spelling); throws Error listing the names otherwise.
AugmentOp augment_op_from_string(const std::string& name);

/// One operation with its signed magnitude, as torchvision passes it to _apply_op.
struct AugmentStep {
  AugmentOp op = AugmentOp::kIdentity;
  double magnitude = 0;
  bool operator==(const AugmentStep& o) const { return op == o.op && magnitude == o.magnitude; }
  bool operator<(const AugmentStep& o) const { return op != o.op ? op < o.op : magnitude < o.magnitude; }
};

namespace functional {

/// torchvision.transforms.autoaugment._apply_op (private there): applies one operation to a uint8
/// image or batch. ShearX/Y: affine with shear atan(magnitude) in degrees about the pixel (0, 0);
/// TranslateX/Y: affine by int(magnitude) pixels; Rotate: rotate by magnitude degrees; Brightness,
/// Color (saturation), Contrast, Sharpness: factor 1 + magnitude; Posterize: int(magnitude) bits;
/// Solarize: threshold magnitude; AutoContrast, Equalize, Invert, Identity ignore the magnitude.
/// `interpolation` nearest or bilinear; `fill` as in affine (nullopt: zero padding).
at::Tensor apply_op(const at::Tensor& image, AugmentOp op, double magnitude,
                    InterpolationMode interpolation = InterpolationMode::kNearest, const Fill& fill = std::nullopt);

}  // namespace functional

/// torchvision.transforms.AutoAugmentPolicy: the sub-policy tables learned on ImageNet, CIFAR-10 and SVHN.
enum class AutoAugmentPolicy { kImageNet, kCifar10, kSvhn };

/// "IMAGENET", "CIFAR10" or "SVHN" (torchvision's enum member names).
std::string to_string(AutoAugmentPolicy policy);
/// The policy named `name` (case-insensitive; an "AutoAugmentPolicy." prefix is ignored).
AutoAugmentPolicy auto_augment_policy_from_string(const std::string& name);

/// Base of the four classes: applies one list of steps per image (images with the same list are
/// transformed together as a batch).
class AugmentPolicyTransform : public RandomTransform {
 public:
  /// Applies steps[i] in order to image i of a batch (or steps[0] to one image).
  at::Tensor apply(const at::Tensor& input, const std::vector<std::vector<AugmentStep>>& steps) const;

 protected:
  AugmentPolicyTransform(const char* name, functional::InterpolationMode interpolation, std::vector<double> fill,
                         at::Generator* generator);
  /// Checks a uint8 [C,H,W] or [B,C,H,W] input; returns the number of images.
  int64_t check_input(const at::Tensor& input) const;
  /// fill made per channel (nullopt when no fill was given: torchvision's fill=None).
  functional::Fill channel_fill(int64_t channels) const;
  /// ", interpolation=..., fill=..." for repr().
  std::string fill_text() const;

  const char* name_;
  functional::InterpolationMode interpolation_;
  std::vector<double> fill_;
};

/// torchvision.transforms.AutoAugment(policy=IMAGENET, interpolation=nearest, fill=None): each image
/// gets one sub-policy (two operations, each applied with its probability at its magnitude bin out of
/// 10, negated for signed operations when its sign draw is 0).
class AutoAugment : public AugmentPolicyTransform {
 public:
  /// What torchvision's get_params draws: torch.randint(transform_num), torch.rand((2,)),
  /// torch.randint(2, (2,)).
  struct Params {
    int64_t policy_id = 0;
    std::array<float, 2> probs{0, 0};
    std::array<int64_t, 2> signs{0, 0};
  };
  /// `fill`: empty (None), one value, or one per channel.
  explicit AutoAugment(AutoAugmentPolicy policy = AutoAugmentPolicy::kImageNet,
                       functional::InterpolationMode interpolation = functional::InterpolationMode::kNearest,
                       std::vector<double> fill = {}, at::Generator* generator = nullptr);
  /// torchvision's AutoAugment.get_params(transform_num).
  static Params get_params(at::Generator& gen, int64_t transform_num);
  /// The operations `params` selects for an image of height x width (those whose prob passes).
  std::vector<AugmentStep> steps(const Params& params, int64_t height, int64_t width) const;
  /// The number of sub-policies in the table (25 for each policy).
  int64_t num_subpolicies() const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  AutoAugmentPolicy policy_;
};

/// torchvision.transforms.RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31,
/// interpolation=nearest, fill=None): num_ops operations picked uniformly from 14, all at bin
/// `magnitude`.
class RandAugment : public AugmentPolicyTransform {
 public:
  /// num_ops >= 0; 0 <= magnitude < num_magnitude_bins; num_magnitude_bins >= 2.
  explicit RandAugment(int64_t num_ops = 2, int64_t magnitude = 9, int64_t num_magnitude_bins = 31,
                       functional::InterpolationMode interpolation = functional::InterpolationMode::kNearest,
                       std::vector<double> fill = {}, at::Generator* generator = nullptr);
  /// One image's draws, as forward makes them: per operation torch.randint(14), then torch.randint(2)
  /// for the sign when the operation is signed (1 negates).
  static std::vector<AugmentStep> get_params(at::Generator& gen, int64_t num_ops, int64_t magnitude,
                                             int64_t num_magnitude_bins, int64_t height, int64_t width);
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  int64_t num_ops_, magnitude_, num_bins_;
};

/// torchvision.transforms.TrivialAugmentWide(num_magnitude_bins=31, interpolation=nearest,
/// fill=None): one operation per image at a random magnitude bin from the wide ranges.
class TrivialAugmentWide : public AugmentPolicyTransform {
 public:
  /// num_magnitude_bins >= 2.
  explicit TrivialAugmentWide(int64_t num_magnitude_bins = 31,
                              functional::InterpolationMode interpolation = functional::InterpolationMode::kNearest,
                              std::vector<double> fill = {}, at::Generator* generator = nullptr);
  /// torchvision's draws: torch.randint(14) for the operation, torch.randint(num_magnitude_bins) for
  /// the bin when it has magnitudes, then torch.randint(2) for the sign when signed.
  static AugmentStep get_params(at::Generator& gen, int64_t num_magnitude_bins);
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  int64_t num_bins_;
};

/// torchvision.transforms.AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0,
/// all_ops=True, interpolation=bilinear, fill=None): mixes the image with mixture_width augmented
/// copies (chains of 1 to 3 operations, or chain_depth) using Dirichlet / Beta weights.
class AugMix : public AugmentPolicyTransform {
 public:
  /// One image's draws.
  struct Params {
    at::Tensor m;                                 ///< float32 [2]: weights of the original and the mix
    at::Tensor weights;                           ///< float32 [mixture_width]: chain weights times m[1]
    std::vector<std::vector<AugmentStep>> chains;  ///< one list of operations per chain
  };
  /// 1 <= severity <= 10, mixture_width >= 1, alpha > 0.
  explicit AugMix(int64_t severity = 3, int64_t mixture_width = 3, int64_t chain_depth = -1, double alpha = 1.0,
                  bool all_ops = true,
                  functional::InterpolationMode interpolation = functional::InterpolationMode::kBilinear,
                  std::vector<double> fill = {}, at::Generator* generator = nullptr);
  /// torchvision's forward draws for one image: torch._sample_dirichlet([alpha, alpha]),
  /// torch._sample_dirichlet([alpha] * mixture_width), then per chain torch.randint(1, 4) for the
  /// depth (when chain_depth <= 0) and per operation torch.randint(#ops), torch.randint(severity) for
  /// the bin when it has magnitudes, torch.randint(2) for the sign when signed.
  static Params get_params(at::Generator& gen, int64_t severity, int64_t mixture_width, int64_t chain_depth,
                           double alpha, bool all_ops, int64_t height, int64_t width);
  using AugmentPolicyTransform::apply;
  /// m[0] * image + sum_i weights[i] * chain_i(image), in float32, truncated back to uint8.
  at::Tensor apply(const at::Tensor& input, const std::vector<Params>& params) const;
  at::Tensor forward(const at::Tensor& input, at::Generator& gen) const override;
  std::string repr() const override;

 private:
  int64_t severity_, mixture_width_, chain_depth_;
  double alpha_;
  bool all_ops_;
};

}  // namespace birdplane::transforms
