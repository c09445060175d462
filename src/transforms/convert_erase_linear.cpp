#include "birdplane/transforms/convert_erase_linear.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"
#include "transforms/internal.h"

namespace birdplane::transforms {
namespace functional {
namespace {

// torchvision's _max_value: the largest value of an integer image type, 1 for floating types.
double max_value(c10::ScalarType t) {
  switch (t) {
    case c10::kByte: return 255;
    case c10::kChar: return 127;
    case c10::kShort: return 32767;
    case c10::kInt: return 2147483647.0;
    case c10::kLong: return 9223372036854775807.0;
    default: return 1;
  }
}

int64_t max_int(c10::ScalarType t) {
  switch (t) {
    case c10::kByte: return 255;
    case c10::kChar: return 127;
    case c10::kShort: return 32767;
    case c10::kInt: return 2147483647LL;
    default: return std::numeric_limits<int64_t>::max();
  }
}

}  // namespace

at::Tensor pil_to_tensor(const at::Tensor& image_hwc) {
  BIRDPLANE_CHECK(image_hwc.dim() >= 2 && image_hwc.dim() <= 4,
                  "pil_to_tensor: expects [H,W], [H,W,C] or [B,H,W,C], got {} dims", image_hwc.dim());
  if (image_hwc.dim() == 2) return image_hwc.unsqueeze(0).clone();
  if (image_hwc.dim() == 3) return image_hwc.permute({2, 0, 1}).contiguous();
  return image_hwc.permute({0, 3, 1, 2}).contiguous();
}

at::Tensor convert_image_dtype(const at::Tensor& image, c10::ScalarType dtype) {
  const auto from = image.scalar_type();
  if (from == dtype) return image;
  const bool to_float = at::isFloatingType(dtype);
  BIRDPLANE_CHECK(at::isFloatingType(from) || at::isIntegralType(from, /*includeBool=*/false),
                  "convert_image_dtype: cannot convert a {} image", c10::toString(from));
  BIRDPLANE_CHECK(to_float || at::isIntegralType(dtype, false), "convert_image_dtype: cannot convert to {}",
                  c10::toString(dtype));
  if (at::isFloatingType(from)) {
    if (to_float) return image.to(dtype);
    BIRDPLANE_CHECK(!((from == c10::kFloat && (dtype == c10::kInt || dtype == c10::kLong)) ||
                      (from == c10::kDouble && dtype == c10::kLong)),
                    "convert_image_dtype: the cast from {} to {} cannot be performed safely", c10::toString(from),
                    c10::toString(dtype));
    // (max + 1 - eps) spreads [0,1] evenly over the integers (torchvision's choice; 1.0 maps to max).
    return image.mul(max_value(dtype) + 1.0 - 1e-3).to(dtype);
  }
  if (to_float) return image.to(dtype) / max_value(from);
  const int64_t in_max = max_int(from), out_max = max_int(dtype);
  if (in_max > out_max) {
    // Whole factor (in_max + 1) / (out_max + 1), computed without overflowing int64.
    const int64_t factor = static_cast<int64_t>((static_cast<double>(in_max) + 1) / (static_cast<double>(out_max) + 1));
    return at::div(image, factor, "floor").to(dtype);
  }
  const int64_t factor = static_cast<int64_t>((static_cast<double>(out_max) + 1) / (static_cast<double>(in_max) + 1));
  return image.to(dtype) * factor;
}

at::Tensor erase(const at::Tensor& image, int64_t i, int64_t j, int64_t h, int64_t w, const at::Tensor& value,
                 bool inplace) {
  BIRDPLANE_CHECK(image.dim() >= 2, "erase: expects an image [..., H, W], got {} dims", image.dim());
  BIRDPLANE_CHECK(i >= 0 && j >= 0 && h >= 0 && w >= 0 && i + h <= image.size(-2) && j + w <= image.size(-1),
                  "erase: the box i={} j={} h={} w={} does not fit a {}x{} image", i, j, h, w, image.size(-2),
                  image.size(-1));
  auto out = inplace ? image : image.clone();
  out.narrow(-2, i, h).narrow(-1, j, w).copy_(value);
  return out;
}

at::Tensor linear_transformation(const at::Tensor& image, const at::Tensor& transformation_matrix,
                                 const at::Tensor& mean_vector) {
  BIRDPLANE_CHECK(image.dim() >= 3, "linear_transformation: expects [C,H,W] or [B,C,H,W], got {} dims", image.dim());
  const int64_t n = image.size(-3) * image.size(-2) * image.size(-1);
  BIRDPLANE_CHECK(transformation_matrix.dim() == 2 && transformation_matrix.size(0) == n,
                  "linear_transformation: a {}x{}x{} image has {} values but the matrix is {}",
                  image.size(-3), image.size(-2), image.size(-1), n, fmt::join(transformation_matrix.sizes(), "x"));
  auto flat = image.reshape({-1, n}) - mean_vector;
  return at::mm(flat, transformation_matrix).view(image.sizes());
}

}  // namespace functional

namespace F = functional;

at::Tensor PILToTensor::operator()(const at::Tensor& input) const { return F::pil_to_tensor(input); }

at::Tensor ConvertImageDtype::operator()(const at::Tensor& input) const {
  return F::convert_image_dtype(input, dtype_);
}

std::string ConvertImageDtype::repr() const {
  std::string name = c10::toString(dtype_);
  // c10 spells types "Float", "Byte": print torchvision's torch.float32 / torch.uint8.
  const std::vector<std::pair<std::string, std::string>> names = {
      {"Float", "float32"}, {"Double", "float64"}, {"Half", "float16"}, {"Byte", "uint8"},
      {"Char", "int8"},     {"Short", "int16"},    {"Int", "int32"},    {"Long", "int64"}};
  for (const auto& [c10name, torch_name] : names)
    if (name == c10name) name = torch_name;
  return "ConvertImageDtype(torch." + name + ")";
}

// --- RandomErasing ---

namespace {

}  // namespace

RandomErasing::RandomErasing(double p, std::array<double, 2> scale, std::array<double, 2> ratio,
                             std::vector<double> value, bool random_value, bool inplace, at::Generator* generator)
    : RandomTransform(generator), p_(p), scale_(scale), ratio_(ratio), value_(std::move(value)),
      random_value_(random_value), inplace_(inplace) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomErasing: p is {}; a probability is between 0 and 1", p);
  BIRDPLANE_CHECK(scale[0] >= 0 && scale[1] <= 1, "RandomErasing: scale ({}, {}) must lie between 0 and 1", scale[0],
                  scale[1]);
  BIRDPLANE_CHECK(scale[0] <= scale[1], "RandomErasing: scale ({}, {}) must be (min, max)", scale[0], scale[1]);
  BIRDPLANE_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1] && std::isfinite(ratio[1]),
                  "RandomErasing: ratio ({}, {}) must be positive and (min, max)", ratio[0], ratio[1]);
  BIRDPLANE_CHECK(random_value_ || !value_.empty(),
                  "RandomErasing: value needs a number, one number per channel, or 'random'");
}

RandomErasing::Params RandomErasing::get_params(at::Generator& gen, int64_t channels, int64_t height, int64_t width,
                                                std::array<double, 2> scale, std::array<double, 2> ratio,
                                                const std::vector<double>& value, bool random_value) {
  Params out;
  out.erase = true;
  const int64_t area = height * width;
  // torch.log(torch.tensor(ratio)): float32 logs.
  auto log_ratio = at::log(at::tensor({static_cast<float>(ratio[0]), static_cast<float>(ratio[1])}));
  const double log_lo = log_ratio[0].item<float>(), log_hi = log_ratio[1].item<float>();
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double erase_area = static_cast<double>(area) * static_cast<double>(uniform(gen, scale[0], scale[1]));
    // torch.exp(torch.empty(1).uniform_(log_lo, log_hi)) on the one-element tensor, as torchvision does.
    auto u = at::empty({1}, at::TensorOptions().dtype(at::kFloat)).uniform_(log_lo, log_hi, gen);
    const double aspect = at::exp(u).item<float>();
    const int64_t h = F::round_half_even(std::sqrt(erase_area * aspect));
    const int64_t w = F::round_half_even(std::sqrt(erase_area / aspect));
    if (!(h < height && w < width)) continue;
    if (random_value) {
      out.value = at::empty({channels, h, w}, at::TensorOptions().dtype(at::kFloat)).normal_(0, 1, gen);
    } else {
      std::vector<float> v(value.begin(), value.end());
      out.value = at::tensor(v).view({-1, 1, 1});
    }
    out.i = randint(gen, 0, height - h + 1);
    out.j = randint(gen, 0, width - w + 1);
    out.h = h;
    out.w = w;
    return out;
  }
  out.whole_image = true;
  out.h = height;
  out.w = width;
  return out;
}

RandomErasing::Params RandomErasing::draw(at::Generator& gen, int64_t channels, int64_t height, int64_t width) const {
  if (!(rand_float(gen) < static_cast<float>(p_))) return {};
  BIRDPLANE_CHECK(random_value_ || value_.size() == 1 || static_cast<int64_t>(value_.size()) == channels,
                  "RandomErasing: value has {} numbers; give one, or one per channel ({})", value_.size(), channels);
  return get_params(gen, channels, height, width, scale_, ratio_, value_, random_value_);
}

at::Tensor RandomErasing::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  check_image(input, "RandomErasing");
  const int64_t n = image_count(input);
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == n, "RandomErasing: {} parameter sets for {} images",
                  params.size(), n);
  bool any = false;
  for (const auto& p : params) any = any || (p.erase && !p.whole_image);
  if (!any) return input;
  auto out = inplace_ ? input : input.clone();
  for (int64_t k = 0; k < n; ++k) {
    const auto& p = params[static_cast<size_t>(k)];
    if (!p.erase || p.whole_image) continue;
    F::erase(input.dim() == 4 ? out[k] : out, p.i, p.j, p.h, p.w, p.value, /*inplace=*/true);
  }
  return out;
}

at::Tensor RandomErasing::forward(const at::Tensor& input, at::Generator& gen) const {
  check_image(input, "RandomErasing");
  return apply(input, draw_per_image(input, [&] { return draw(gen, input.size(-3), input.size(-2), input.size(-1)); }));
}

std::string RandomErasing::repr() const {
  std::string value;
  if (random_value_) {
    value = "random";
  } else if (value_.size() == 1) {
    value = python_number(value_[0]);
  } else {
    for (double v : value_) value += (value.empty() ? "" : ", ") + python_number(v);
    value = "[" + value + "]";
  }
  return fmt::format("RandomErasing(p={}, scale=({}, {}), ratio=({}, {}), value={}, inplace={})", python_number(p_),
                     scale_[0], scale_[1], ratio_[0], ratio_[1], value, inplace_ ? "True" : "False");
}

// --- LinearTransformation ---

LinearTransformation::LinearTransformation(at::Tensor transformation_matrix, at::Tensor mean_vector)
    : matrix_(std::move(transformation_matrix)), mean_(std::move(mean_vector)) {
  BIRDPLANE_CHECK(matrix_.dim() == 2 && matrix_.size(0) == matrix_.size(1),
                  "LinearTransformation: transformation_matrix must be square, got {}", fmt::join(matrix_.sizes(), "x"));
  BIRDPLANE_CHECK(mean_.dim() == 1 && mean_.size(0) == matrix_.size(0),
                  "LinearTransformation: mean_vector has {} values; it needs {} (the matrix side)", mean_.numel(),
                  matrix_.size(0));
}

at::Tensor LinearTransformation::operator()(const at::Tensor& input) const {
  return F::linear_transformation(input, matrix_, mean_);
}

std::string LinearTransformation::repr() const {
  return fmt::format("LinearTransformation(transformation_matrix={}x{}, mean_vector={})", matrix_.size(0),
                     matrix_.size(1), mean_.size(0));
}

}  // namespace birdplane::transforms
