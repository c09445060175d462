// Automatic augmentation policies, matching torchvision/transforms/autoaugment.py (0.14). The
// magnitude tables are computed with the same ATen calls torchvision makes (linspace, arange / round
// in float32), so the float32 magnitudes are bit-equal; the draws go through random.h's helpers and
// at::_sample_dirichlet in torchvision's order.
#include "birdplane/transforms/autoaugment.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/color.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"
#include "transforms/internal.h"

namespace birdplane::transforms {
namespace F = functional;
using Op = AugmentOp;

namespace {

constexpr const char* kOpNames[] = {"Identity",   "ShearX",   "ShearY",    "TranslateX", "TranslateY",
                                    "Rotate",     "Brightness", "Color",   "Contrast",   "Sharpness",
                                    "Posterize",  "Solarize", "AutoContrast", "Equalize", "Invert"};

// One entry of a sub-policy: operation, probability (compared as float32, like torchvision's
// tensor `probs[i] <= p`), magnitude bin out of 10 (-1: the operation has none).
struct PolicyOp {
  Op op;
  float p;
  int bin;
};
using SubPolicy = std::array<PolicyOp, 2>;

// torchvision's AutoAugment._get_policies tables.
const std::vector<SubPolicy> kImageNetTable = {
    {{{Op::kPosterize, 0.4f, 8}, {Op::kRotate, 0.6f, 9}}},
    {{{Op::kSolarize, 0.6f, 5}, {Op::kAutoContrast, 0.6f, -1}}},
    {{{Op::kEqualize, 0.8f, -1}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kPosterize, 0.6f, 7}, {Op::kPosterize, 0.6f, 6}}},
    {{{Op::kEqualize, 0.4f, -1}, {Op::kSolarize, 0.2f, 4}}},
    {{{Op::kEqualize, 0.4f, -1}, {Op::kRotate, 0.8f, 8}}},
    {{{Op::kSolarize, 0.6f, 3}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kPosterize, 0.8f, 5}, {Op::kEqualize, 1.0f, -1}}},
    {{{Op::kRotate, 0.2f, 3}, {Op::kSolarize, 0.6f, 8}}},
    {{{Op::kEqualize, 0.6f, -1}, {Op::kPosterize, 0.4f, 6}}},
    {{{Op::kRotate, 0.8f, 8}, {Op::kColor, 0.4f, 0}}},
    {{{Op::kRotate, 0.4f, 9}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kEqualize, 0.0f, -1}, {Op::kEqualize, 0.8f, -1}}},
    {{{Op::kInvert, 0.6f, -1}, {Op::kEqualize, 1.0f, -1}}},
    {{{Op::kColor, 0.6f, 4}, {Op::kContrast, 1.0f, 8}}},
    {{{Op::kRotate, 0.8f, 8}, {Op::kColor, 1.0f, 2}}},
    {{{Op::kColor, 0.8f, 8}, {Op::kSolarize, 0.8f, 7}}},
    {{{Op::kSharpness, 0.4f, 7}, {Op::kInvert, 0.6f, -1}}},
    {{{Op::kShearX, 0.6f, 5}, {Op::kEqualize, 1.0f, -1}}},
    {{{Op::kColor, 0.4f, 0}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kEqualize, 0.4f, -1}, {Op::kSolarize, 0.2f, 4}}},
    {{{Op::kSolarize, 0.6f, 5}, {Op::kAutoContrast, 0.6f, -1}}},
    {{{Op::kInvert, 0.6f, -1}, {Op::kEqualize, 1.0f, -1}}},
    {{{Op::kColor, 0.6f, 4}, {Op::kContrast, 1.0f, 8}}},
    {{{Op::kEqualize, 0.8f, -1}, {Op::kEqualize, 0.6f, -1}}},
};
const std::vector<SubPolicy> kCifar10Table = {
    {{{Op::kInvert, 0.1f, -1}, {Op::kContrast, 0.2f, 6}}},
    {{{Op::kRotate, 0.7f, 2}, {Op::kTranslateX, 0.3f, 9}}},
    {{{Op::kSharpness, 0.8f, 1}, {Op::kSharpness, 0.9f, 3}}},
    {{{Op::kShearY, 0.5f, 8}, {Op::kTranslateY, 0.7f, 9}}},
    {{{Op::kAutoContrast, 0.5f, -1}, {Op::kEqualize, 0.9f, -1}}},
    {{{Op::kShearY, 0.2f, 7}, {Op::kPosterize, 0.3f, 7}}},
    {{{Op::kColor, 0.4f, 3}, {Op::kBrightness, 0.6f, 7}}},
    {{{Op::kSharpness, 0.3f, 9}, {Op::kBrightness, 0.7f, 9}}},
    {{{Op::kEqualize, 0.6f, -1}, {Op::kEqualize, 0.5f, -1}}},
    {{{Op::kContrast, 0.6f, 7}, {Op::kSharpness, 0.6f, 5}}},
    {{{Op::kColor, 0.7f, 7}, {Op::kTranslateX, 0.5f, 8}}},
    {{{Op::kEqualize, 0.3f, -1}, {Op::kAutoContrast, 0.4f, -1}}},
    {{{Op::kTranslateY, 0.4f, 3}, {Op::kSharpness, 0.2f, 6}}},
    {{{Op::kBrightness, 0.9f, 6}, {Op::kColor, 0.2f, 8}}},
    {{{Op::kSolarize, 0.5f, 2}, {Op::kInvert, 0.0f, -1}}},
    {{{Op::kEqualize, 0.2f, -1}, {Op::kAutoContrast, 0.6f, -1}}},
    {{{Op::kEqualize, 0.2f, -1}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kColor, 0.9f, 9}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kAutoContrast, 0.8f, -1}, {Op::kSolarize, 0.2f, 8}}},
    {{{Op::kBrightness, 0.1f, 3}, {Op::kColor, 0.7f, 0}}},
    {{{Op::kSolarize, 0.4f, 5}, {Op::kAutoContrast, 0.9f, -1}}},
    {{{Op::kTranslateY, 0.9f, 9}, {Op::kTranslateY, 0.7f, 9}}},
    {{{Op::kAutoContrast, 0.9f, -1}, {Op::kSolarize, 0.8f, 3}}},
    {{{Op::kEqualize, 0.8f, -1}, {Op::kInvert, 0.1f, -1}}},
    {{{Op::kTranslateY, 0.7f, 9}, {Op::kAutoContrast, 0.9f, -1}}},
};
const std::vector<SubPolicy> kSvhnTable = {
    {{{Op::kShearX, 0.9f, 4}, {Op::kInvert, 0.2f, -1}}},
    {{{Op::kShearY, 0.9f, 8}, {Op::kInvert, 0.7f, -1}}},
    {{{Op::kEqualize, 0.6f, -1}, {Op::kSolarize, 0.6f, 6}}},
    {{{Op::kInvert, 0.9f, -1}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kEqualize, 0.6f, -1}, {Op::kRotate, 0.9f, 3}}},
    {{{Op::kShearX, 0.9f, 4}, {Op::kAutoContrast, 0.8f, -1}}},
    {{{Op::kShearY, 0.9f, 8}, {Op::kInvert, 0.4f, -1}}},
    {{{Op::kShearY, 0.9f, 5}, {Op::kSolarize, 0.2f, 6}}},
    {{{Op::kInvert, 0.9f, -1}, {Op::kAutoContrast, 0.8f, -1}}},
    {{{Op::kEqualize, 0.6f, -1}, {Op::kRotate, 0.9f, 3}}},
    {{{Op::kShearX, 0.9f, 4}, {Op::kSolarize, 0.3f, 3}}},
    {{{Op::kShearY, 0.8f, 8}, {Op::kInvert, 0.7f, -1}}},
    {{{Op::kEqualize, 0.9f, -1}, {Op::kTranslateY, 0.6f, 6}}},
    {{{Op::kInvert, 0.9f, -1}, {Op::kEqualize, 0.6f, -1}}},
    {{{Op::kContrast, 0.3f, 3}, {Op::kRotate, 0.8f, 4}}},
    {{{Op::kInvert, 0.8f, -1}, {Op::kTranslateY, 0.0f, 2}}},
    {{{Op::kShearY, 0.7f, 6}, {Op::kSolarize, 0.4f, 8}}},
    {{{Op::kInvert, 0.6f, -1}, {Op::kRotate, 0.8f, 4}}},
    {{{Op::kShearY, 0.3f, 7}, {Op::kTranslateX, 0.9f, 3}}},
    {{{Op::kShearX, 0.1f, 6}, {Op::kInvert, 0.6f, -1}}},
    {{{Op::kSolarize, 0.7f, 2}, {Op::kTranslateY, 0.6f, 7}}},
    {{{Op::kShearY, 0.8f, 4}, {Op::kInvert, 0.8f, -1}}},
    {{{Op::kShearX, 0.7f, 9}, {Op::kTranslateY, 0.8f, 3}}},
    {{{Op::kShearY, 0.8f, 5}, {Op::kAutoContrast, 0.7f, -1}}},
    {{{Op::kShearX, 0.7f, 2}, {Op::kInvert, 0.1f, -1}}},
};

const std::vector<SubPolicy>& table(AutoAugmentPolicy policy) {
  switch (policy) {
    case AutoAugmentPolicy::kImageNet: return kImageNetTable;
    case AutoAugmentPolicy::kCifar10: return kCifar10Table;
    case AutoAugmentPolicy::kSvhn: return kSvhnTable;
  }
  fail("AutoAugment: unknown policy");
}

// The magnitude ranges of torchvision's _augmentation_space methods: AutoAugment and RandAugment
// share one, TrivialAugmentWide has its wide one, AugMix its own.
enum class Space { kStandard, kWide, kAugMix };

// The 14 operations RandAugment and TrivialAugmentWide pick from, in their dict order.
constexpr Op kRandOps[] = {Op::kIdentity, Op::kShearX,     Op::kShearY,    Op::kTranslateX, Op::kTranslateY,
                           Op::kRotate,   Op::kBrightness, Op::kColor,     Op::kContrast,   Op::kSharpness,
                           Op::kPosterize, Op::kSolarize,  Op::kAutoContrast, Op::kEqualize};
// AugMix's operations: the first 9, then 4 more with all_ops.
constexpr Op kAugMixOps[] = {Op::kShearX,    Op::kShearY,   Op::kTranslateX,   Op::kTranslateY, Op::kRotate,
                             Op::kPosterize, Op::kSolarize, Op::kAutoContrast, Op::kEqualize,   Op::kBrightness,
                             Op::kColor,     Op::kContrast, Op::kSharpness};

// Whether torchvision's table gives the operation magnitudes (a 1-D tensor) rather than a scalar 0.
bool has_magnitudes(Op op) {
  return op != Op::kIdentity && op != Op::kAutoContrast && op != Op::kEqualize && op != Op::kInvert;
}

bool is_signed(Op op) { return has_magnitudes(op) && op != Op::kPosterize && op != Op::kSolarize; }

// float(magnitudes[bin].item()) of torchvision's table for `op`, for an image of height x width.
double magnitude_of(Space space, Op op, int64_t num_bins, int64_t bin, int64_t height, int64_t width) {
  if (!has_magnitudes(op)) return 0.0;
  double end = 0;
  switch (op) {
    case Op::kShearX:
    case Op::kShearY: end = space == Space::kWide ? 0.99 : 0.3; break;
    case Op::kTranslateX:
    case Op::kTranslateY: {
      const double size = static_cast<double>(op == Op::kTranslateX ? width : height);
      end = space == Space::kWide ? 32.0 : space == Space::kAugMix ? size / 3.0 : 150.0 / 331.0 * size;
      break;
    }
    case Op::kRotate: end = space == Space::kWide ? 135.0 : 30.0; break;
    case Op::kPosterize: {
      // (top - (arange(n) / ((n - 1) / k)).round().int()): true division of int64 by a Python float
      // gives float32; top 8 and k 4 (AutoAugment, RandAugment), 8 and 6 (wide), 4 and 4 (AugMix).
      const double top = space == Space::kAugMix ? 4 : 8, k = space == Space::kWide ? 6 : 4;
      auto bits = at::rsub(at::arange(num_bins).div(static_cast<double>(num_bins - 1) / k).round().to(at::kInt), top);
      return static_cast<double>(bits[bin].item<int32_t>());
    }
    case Op::kSolarize: return static_cast<double>(at::linspace(255.0, 0.0, num_bins)[bin].item<float>());
    default: end = space == Space::kWide ? 0.99 : 0.9; break;  // Brightness, Color, Contrast, Sharpness
  }
  return static_cast<double>(at::linspace(0.0, end, num_bins)[bin].item<float>());
}

void check_interpolation(F::InterpolationMode mode, const char* who) {
  BIRDPLANE_CHECK(mode == F::InterpolationMode::kNearest || mode == F::InterpolationMode::kBilinear,
                  "{}: interpolation {} is not supported on tensors; allowed: nearest, bilinear", who,
                  F::to_string(mode));
}

}  // namespace

std::string to_string(AugmentOp op) { return kOpNames[static_cast<int>(op)]; }

AugmentOp augment_op_from_string(const std::string& name) {
  for (size_t i = 0; i < std::size(kOpNames); ++i)
    if (name == kOpNames[i]) return static_cast<AugmentOp>(i);
  fail(fmt::format("augment operation \"{}\" is not known; allowed: {}", name, fmt::join(kOpNames, ", ")));
}

std::string to_string(AutoAugmentPolicy policy) {
  switch (policy) {
    case AutoAugmentPolicy::kImageNet: return "IMAGENET";
    case AutoAugmentPolicy::kCifar10: return "CIFAR10";
    case AutoAugmentPolicy::kSvhn: return "SVHN";
  }
  return "?";
}

AutoAugmentPolicy auto_augment_policy_from_string(const std::string& name) {
  std::string word = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
  std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::toupper(c); });
  if (word == "IMAGENET") return AutoAugmentPolicy::kImageNet;
  if (word == "CIFAR10") return AutoAugmentPolicy::kCifar10;
  if (word == "SVHN") return AutoAugmentPolicy::kSvhn;
  fail(fmt::format("AutoAugment: policy \"{}\" is not known; allowed: IMAGENET, CIFAR10, SVHN", name));
}

namespace functional {

at::Tensor apply_op(const at::Tensor& image, AugmentOp op, double magnitude, InterpolationMode interpolation,
                    const Fill& fill) {
  switch (op) {
    case Op::kShearX:
    case Op::kShearY: {
      // torchvision turns the AutoAugment shear level into degrees (affine's shear is an angle) and
      // shears about the top-left pixel.
      const double degrees = std::atan(magnitude) * (180.0 / M_PI);
      const std::array<double, 2> shear = op == Op::kShearX ? std::array<double, 2>{degrees, 0.0}
                                                            : std::array<double, 2>{0.0, degrees};
      return affine(image, 0.0, {0.0, 0.0}, 1.0, shear, interpolation, fill, std::array<double, 2>{0.0, 0.0});
    }
    case Op::kTranslateX:
    case Op::kTranslateY: {
      const double t = std::trunc(magnitude);  // Python's int(magnitude)
      const std::array<double, 2> translate = op == Op::kTranslateX ? std::array<double, 2>{t, 0.0}
                                                                    : std::array<double, 2>{0.0, t};
      return affine(image, 0.0, translate, 1.0, {0.0, 0.0}, interpolation, fill);
    }
    case Op::kRotate: return rotate(image, magnitude, interpolation, false, std::nullopt, fill);
    case Op::kBrightness: return adjust_brightness(image, 1.0 + magnitude);
    case Op::kColor: return adjust_saturation(image, 1.0 + magnitude);
    case Op::kContrast: return adjust_contrast(image, 1.0 + magnitude);
    case Op::kSharpness: return adjust_sharpness(image, 1.0 + magnitude);
    case Op::kPosterize: return posterize(image, static_cast<int64_t>(std::trunc(magnitude)));
    case Op::kSolarize: return solarize(image, magnitude);
    case Op::kAutoContrast: return autocontrast(image);
    case Op::kEqualize: return equalize(image);
    case Op::kInvert: return invert(image);
    case Op::kIdentity: return image;
  }
  fail("apply_op: unknown operation");
}

}  // namespace functional

// ---- shared base ----

AugmentPolicyTransform::AugmentPolicyTransform(const char* name, F::InterpolationMode interpolation,
                                               std::vector<double> fill, at::Generator* generator)
    : RandomTransform(generator), name_(name), interpolation_(interpolation), fill_(std::move(fill)) {
  check_interpolation(interpolation_, name_);
  for (double v : fill_)
    BIRDPLANE_CHECK(std::isfinite(v), "{}: fill values must be finite numbers, got {}", name_, v);
}

int64_t AugmentPolicyTransform::check_input(const at::Tensor& input) const {
  check_image(input, name_);
  BIRDPLANE_CHECK(input.scalar_type() == at::kByte,
                  "{} expects uint8 images (as torchvision's tensor path), got {}; convert with "
                  "ConvertImageDtype(torch.uint8) first",
                  name_, c10::toString(input.scalar_type()));
  const int64_t c = input.size(-3);
  BIRDPLANE_CHECK(c == 1 || c == 3, "{} expects 1 or 3 channels, got {}", name_, c);
  return image_count(input);
}

F::Fill AugmentPolicyTransform::channel_fill(int64_t channels) const {
  if (fill_.empty()) return std::nullopt;
  BIRDPLANE_CHECK(fill_.size() == 1 || static_cast<int64_t>(fill_.size()) == channels,
                  "{}: fill has {} values; give one, or one per channel ({})", name_, fill_.size(), channels);
  return fill_.size() == 1 ? std::vector<double>(static_cast<size_t>(channels), fill_[0]) : fill_;
}

std::string AugmentPolicyTransform::fill_text() const {
  std::string fill = "None";
  if (fill_.size() == 1)
    fill = python_repr(fill_[0]);
  else if (!fill_.empty()) {
    std::vector<std::string> parts;
    for (double v : fill_) parts.push_back(python_repr(v));
    fill = fmt::format("[{}]", fmt::join(parts, ", "));
  }
  return fmt::format("interpolation={}, fill={}", F::to_string(interpolation_), fill);
}

at::Tensor AugmentPolicyTransform::apply(const at::Tensor& input,
                                         const std::vector<std::vector<AugmentStep>>& steps) const {
  const int64_t n = check_input(input);
  BIRDPLANE_CHECK(static_cast<int64_t>(steps.size()) == n, "{}: {} parameter sets for {} image(s)", name_,
                  steps.size(), n);
  const auto fill = channel_fill(input.size(-3));
  auto run = [&](at::Tensor x, const std::vector<AugmentStep>& chain) {
    for (const auto& s : chain) x = F::apply_op(x, s.op, s.magnitude, interpolation_, fill);
    return x;
  };
  if (input.dim() == 3) return run(input, steps[0]);
  // Images with the same operations go through them together: every operation treats the images of a
  // batch independently, so this equals the per-image loop.
  std::map<std::vector<AugmentStep>, std::vector<int64_t>> groups;
  for (int64_t i = 0; i < n; ++i) groups[steps[static_cast<size_t>(i)]].push_back(i);
  if (groups.size() == 1) return run(input, groups.begin()->first);
  auto out = input.clone();
  for (const auto& [chain, images] : groups) {
    if (chain.empty()) continue;
    auto index = torch::tensor(images, torch::kLong);
    out.index_copy_(0, index, run(input.index_select(0, index), chain));
  }
  return out;
}

// ---- AutoAugment ----

AutoAugment::AutoAugment(AutoAugmentPolicy policy, F::InterpolationMode interpolation, std::vector<double> fill,
                         at::Generator* generator)
    : AugmentPolicyTransform("AutoAugment", interpolation, std::move(fill), generator), policy_(policy) {}

AutoAugment::Params AutoAugment::get_params(at::Generator& gen, int64_t transform_num) {
  Params p;
  p.policy_id = randint(gen, transform_num);
  // torch.rand((2,)) and torch.randint(2, (2,)) fill their elements one after the other from the same
  // stream as two single draws would.
  p.probs = {rand_float(gen), rand_float(gen)};
  p.signs = {randint(gen, 2), randint(gen, 2)};
  return p;
}

int64_t AutoAugment::num_subpolicies() const { return static_cast<int64_t>(table(policy_).size()); }

std::vector<AugmentStep> AutoAugment::steps(const Params& params, int64_t height, int64_t width) const {
  const auto& sub = table(policy_).at(static_cast<size_t>(params.policy_id));
  std::vector<AugmentStep> out;
  for (size_t i = 0; i < 2; ++i) {
    if (!(params.probs[i] <= sub[i].p)) continue;
    double magnitude = sub[i].bin < 0 ? 0.0 : magnitude_of(Space::kStandard, sub[i].op, 10, sub[i].bin, height, width);
    if (is_signed(sub[i].op) && params.signs[i] == 0) magnitude = -magnitude;
    out.push_back({sub[i].op, magnitude});
  }
  return out;
}

at::Tensor AutoAugment::forward(const at::Tensor& input, at::Generator& gen) const {
  check_input(input);
  return apply(input, draw_per_image(input, [&] {
                 return steps(get_params(gen, num_subpolicies()), input.size(-2), input.size(-1));
               }));
}

std::string AutoAugment::repr() const {
  return fmt::format("AutoAugment(policy=AutoAugmentPolicy.{}, {})", to_string(policy_), fill_text());
}

// ---- RandAugment ----

RandAugment::RandAugment(int64_t num_ops, int64_t magnitude, int64_t num_magnitude_bins,
                         F::InterpolationMode interpolation, std::vector<double> fill, at::Generator* generator)
    : AugmentPolicyTransform("RandAugment", interpolation, std::move(fill), generator), num_ops_(num_ops),
      magnitude_(magnitude), num_bins_(num_magnitude_bins) {
  BIRDPLANE_CHECK(num_ops >= 0, "RandAugment: num_ops is {}; it must be 0 or more", num_ops);
  BIRDPLANE_CHECK(num_magnitude_bins >= 2, "RandAugment: num_magnitude_bins is {}; it must be 2 or more",
                  num_magnitude_bins);
  BIRDPLANE_CHECK(magnitude >= 0 && magnitude < num_magnitude_bins,
                  "RandAugment: magnitude is {}; allowed: 0 to num_magnitude_bins - 1 = {}", magnitude,
                  num_magnitude_bins - 1);
}

std::vector<AugmentStep> RandAugment::get_params(at::Generator& gen, int64_t num_ops, int64_t magnitude,
                                                 int64_t num_magnitude_bins, int64_t height, int64_t width) {
  std::vector<AugmentStep> out;
  for (int64_t k = 0; k < num_ops; ++k) {
    const Op op = kRandOps[randint(gen, static_cast<int64_t>(std::size(kRandOps)))];
    double m = magnitude_of(Space::kStandard, op, num_magnitude_bins, magnitude, height, width);
    if (is_signed(op) && randint(gen, 2) == 1) m = -m;
    out.push_back({op, m});
  }
  return out;
}

at::Tensor RandAugment::forward(const at::Tensor& input, at::Generator& gen) const {
  check_input(input);
  return apply(input, draw_per_image(input, [&] {
                 return get_params(gen, num_ops_, magnitude_, num_bins_, input.size(-2), input.size(-1));
               }));
}

std::string RandAugment::repr() const {
  return fmt::format("RandAugment(num_ops={}, magnitude={}, num_magnitude_bins={}, {})", num_ops_, magnitude_,
                     num_bins_, fill_text());
}

// ---- TrivialAugmentWide ----

TrivialAugmentWide::TrivialAugmentWide(int64_t num_magnitude_bins, F::InterpolationMode interpolation,
                                       std::vector<double> fill, at::Generator* generator)
    : AugmentPolicyTransform("TrivialAugmentWide", interpolation, std::move(fill), generator),
      num_bins_(num_magnitude_bins) {
  BIRDPLANE_CHECK(num_magnitude_bins >= 2, "TrivialAugmentWide: num_magnitude_bins is {}; it must be 2 or more",
                  num_magnitude_bins);
}

AugmentStep TrivialAugmentWide::get_params(at::Generator& gen, int64_t num_magnitude_bins) {
  const Op op = kRandOps[randint(gen, static_cast<int64_t>(std::size(kRandOps)))];
  // The wide table does not depend on the image size.
  double m = has_magnitudes(op)
                 ? magnitude_of(Space::kWide, op, num_magnitude_bins, randint(gen, num_magnitude_bins), 0, 0)
                 : 0.0;
  if (is_signed(op) && randint(gen, 2) == 1) m = -m;
  return {op, m};
}

at::Tensor TrivialAugmentWide::forward(const at::Tensor& input, at::Generator& gen) const {
  check_input(input);
  return apply(input, draw_per_image(input, [&] { return std::vector<AugmentStep>{get_params(gen, num_bins_)}; }));
}

std::string TrivialAugmentWide::repr() const {
  return fmt::format("TrivialAugmentWide(num_magnitude_bins={}, {})", num_bins_, fill_text());
}

// ---- AugMix ----

AugMix::AugMix(int64_t severity, int64_t mixture_width, int64_t chain_depth, double alpha, bool all_ops,
               F::InterpolationMode interpolation, std::vector<double> fill, at::Generator* generator)
    : AugmentPolicyTransform("AugMix", interpolation, std::move(fill), generator), severity_(severity),
      mixture_width_(mixture_width), chain_depth_(chain_depth), alpha_(alpha), all_ops_(all_ops) {
  BIRDPLANE_CHECK(severity >= 1 && severity <= 10, "AugMix: severity is {}; allowed: 1 to 10", severity);
  BIRDPLANE_CHECK(mixture_width >= 1, "AugMix: mixture_width is {}; it must be 1 or more", mixture_width);
  BIRDPLANE_CHECK(alpha > 0 && std::isfinite(alpha), "AugMix: alpha is {}; it must be a positive number", alpha);
}

AugMix::Params AugMix::get_params(at::Generator& gen, int64_t severity, int64_t mixture_width, int64_t chain_depth,
                                  double alpha, bool all_ops, int64_t height, int64_t width) {
  Params p;
  // torch._sample_dirichlet on [1, 2] then [1, mixture_width] float32 tensors of alpha: the CPU kernel
  // draws one gamma per element in order from the generator.
  auto m = at::_sample_dirichlet(at::full({1, 2}, alpha, at::kFloat), gen);
  auto w = at::_sample_dirichlet(at::full({1, mixture_width}, alpha, at::kFloat), gen) * m.select(1, 1).view({1, -1});
  p.m = m[0];
  p.weights = w[0];
  const int64_t num_ops = all_ops ? 13 : 9;
  for (int64_t i = 0; i < mixture_width; ++i) {
    const int64_t depth = chain_depth > 0 ? chain_depth : randint(gen, 1, 4);
    std::vector<AugmentStep> chain;
    for (int64_t d = 0; d < depth; ++d) {
      const Op op = kAugMixOps[randint(gen, num_ops)];
      double mag = has_magnitudes(op) ? magnitude_of(Space::kAugMix, op, 10, randint(gen, severity), height, width)
                                      : 0.0;
      if (is_signed(op) && randint(gen, 2) == 1) mag = -mag;
      chain.push_back({op, mag});
    }
    p.chains.push_back(std::move(chain));
  }
  return p;
}

at::Tensor AugMix::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  const int64_t n = check_input(input);
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == n, "AugMix: {} parameter sets for {} image(s)",
                  params.size(), n);
  const auto batch = input.dim() == 4 ? input : input.unsqueeze(0);
  std::vector<at::Tensor> m0, weights;
  for (const auto& p : params) {
    BIRDPLANE_CHECK(static_cast<int64_t>(p.chains.size()) == mixture_width_ && p.weights.numel() == mixture_width_,
                    "AugMix: parameters for {} chains, expected mixture_width = {}", p.chains.size(), mixture_width_);
    m0.push_back(p.m.slice(0, 0, 1));
    weights.push_back(p.weights);
  }
  const auto w = torch::stack(weights);  // [B, mixture_width]
  // Same float32 arithmetic as torchvision, image by image: m0 * x, then += w_i * chain_i(x).
  auto mix = torch::cat(m0).view({n, 1, 1, 1}) * batch;
  for (int64_t i = 0; i < mixture_width_; ++i) {
    std::vector<std::vector<AugmentStep>> chain;
    for (const auto& p : params) chain.push_back(p.chains[static_cast<size_t>(i)]);
    mix.add_(w.select(1, i).view({n, 1, 1, 1}) * AugmentPolicyTransform::apply(batch, chain));
  }
  mix = mix.to(at::kByte);
  return input.dim() == 4 ? mix : mix[0];
}

at::Tensor AugMix::forward(const at::Tensor& input, at::Generator& gen) const {
  check_input(input);
  return apply(input, draw_per_image(input, [&] {
                 return get_params(gen, severity_, mixture_width_, chain_depth_, alpha_, all_ops_, input.size(-2),
                                   input.size(-1));
               }));
}

std::string AugMix::repr() const {
  return fmt::format("AugMix(severity={}, mixture_width={}, chain_depth={}, alpha={}, all_ops={}, {})", severity_,
                     mixture_width_, chain_depth_, python_repr(alpha_), all_ops_ ? "True" : "False", fill_text());
}

}  // namespace birdplane::transforms
