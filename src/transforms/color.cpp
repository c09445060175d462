#include "birdplane/transforms/color.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"
#include "transforms/internal.h"

namespace birdplane::transforms {
namespace functional {
namespace {

// Every op here mirrors torchvision/transforms/functional_tensor.py (0.14) operation by operation:
// the same ATen kernels in the same order give bit-identical floats, so uint8 results match exactly.

// The shape check every transform makes, then what the colour functions add: 1 or 3 channels,
// uint8 or floating-point pixels.
void check_color_image(const at::Tensor& img, const char* op) {
  check_image(img, op);
  BIRDPLANE_CHECK(img.size(-3) == 1 || img.size(-3) == 3, "{}: expects 1 or 3 channels, got {}", op, img.size(-3));
  BIRDPLANE_CHECK(img.scalar_type() == at::kByte || img.is_floating_point(),
                  "{}: expects a uint8 or floating-point image, got {}", op, c10::toString(img.scalar_type()));
}

void check_uint8(const at::Tensor& img, const char* op) {
  BIRDPLANE_CHECK(img.scalar_type() == at::kByte,
                  "{}: only uint8 images are supported (as in torchvision), got {}; convert with "
                  "convert_image_dtype(x, uint8) first",
                  op, c10::toString(img.scalar_type()));
}

void check_factor(double f, const char* op, const char* name) {
  BIRDPLANE_CHECK(f >= 0 && std::isfinite(f), "{}: {} is {}; it must be 0 or more", op, name, f);
}

// torchvision's _blend: ratio * a + (1 - ratio) * b, clamped to [0, bound], cast to a's dtype.
at::Tensor blend(const at::Tensor& a, const at::Tensor& b, double ratio) {
  const double bound = a.is_floating_point() ? 1.0 : 255.0;
  return (a * ratio + b * (1.0 - ratio)).clamp(0, bound).to(a.scalar_type());
}

at::ScalarType work_type(const at::Tensor& img) {
  return img.is_floating_point() ? img.scalar_type() : at::kFloat;
}

// torchvision's _rgb2hsv on float RGB in [0,1] (channels at dim -3).
at::Tensor rgb2hsv(const at::Tensor& img) {
  auto rgb = img.unbind(-3);
  const auto &r = rgb[0], &g = rgb[1], &b = rgb[2];
  auto maxc = std::get<0>(img.max(-3));
  auto minc = std::get<0>(img.min(-3));
  auto eqc = maxc == minc;
  auto cr = maxc - minc;
  auto ones = at::ones_like(maxc);
  auto s = cr / at::where(eqc, ones, maxc);
  auto cr_divisor = at::where(eqc, ones, cr);
  auto rc = (maxc - r) / cr_divisor;
  auto gc = (maxc - g) / cr_divisor;
  auto bc = (maxc - b) / cr_divisor;
  auto hr = (maxc == r) * (bc - gc);
  auto hg = ((maxc == g) & (maxc != r)) * (rc + 2.0 - bc);
  auto hb = ((maxc != g) & (maxc != r)) * (gc + 4.0 - rc);
  auto h = hr + hg + hb;
  h = at::fmod(h / 6.0 + 1.0, 1.0);
  return at::stack({h, s, maxc}, -3);
}

// torchvision's _hsv2rgb: picks (v,q,p,p,t,v) / (t,v,v,q,p,p) / (p,p,t,v,v,q) by sector i = floor(6h) % 6.
at::Tensor hsv2rgb(const at::Tensor& img) {
  auto hsv = img.unbind(-3);
  const auto &h = hsv[0], &s = hsv[1], &v = hsv[2];
  auto i = at::floor(h * 6.0);
  auto f = h * 6.0 - i;
  auto ii = i.to(at::kInt);
  auto p = at::clamp(v * (1.0 - s), 0.0, 1.0);
  auto q = at::clamp(v * (1.0 - s * f), 0.0, 1.0);
  auto t = at::clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0);
  ii = at::remainder(ii, 6);
  auto mask = ii.unsqueeze(-3) == at::arange(6, ii.options().dtype(at::kLong)).view({-1, 1, 1});
  auto a1 = at::stack({v, q, p, p, t, v}, -3);
  auto a2 = at::stack({t, v, v, q, p, p}, -3);
  auto a3 = at::stack({p, p, t, v, v, q}, -3);
  auto a4 = at::stack({a1, a2, a3}, -4);
  return at::einsum("...ijk, ...xijk -> ...xjk", {mask.to(img.scalar_type()), a4});
}

// A depthwise conv2d of a [B,C,H,W] (or [C,H,W]) image with one 2-D kernel, computed in float and
// cast back (rounded for integer images) as torchvision's _cast_squeeze_in/_cast_squeeze_out do.
at::Tensor depthwise(const at::Tensor& img, const at::Tensor& kernel2d, std::array<int64_t, 4> reflect_pad) {
  const bool squeeze = img.dim() == 3;
  auto x = squeeze ? img.unsqueeze(0) : img;
  const auto out_type = x.scalar_type();
  const bool cast = out_type != kernel2d.scalar_type();
  if (cast) x = x.to(kernel2d.scalar_type());
  auto kernel = kernel2d.expand({x.size(1), 1, kernel2d.size(0), kernel2d.size(1)});
  if (reflect_pad[0] || reflect_pad[1] || reflect_pad[2] || reflect_pad[3])
    x = at::reflection_pad2d(x, {reflect_pad[0], reflect_pad[1], reflect_pad[2], reflect_pad[3]});
  x = at::conv2d(x, kernel, at::Tensor(), at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, x.size(1));
  if (squeeze) x = x.squeeze(0);
  if (cast) {
    if (!at::isFloatingType(out_type)) x = at::round(x);
    x = x.to(out_type);
  }
  return x;
}

at::Tensor gaussian_kernel1d(int64_t size, double sigma) {
  const double half = (static_cast<double>(size) - 1) * 0.5;
  auto x = at::linspace(-half, half, size, at::TensorOptions().dtype(at::kFloat));
  auto pdf = at::exp((x / sigma).pow(2) * -0.5);
  return pdf / pdf.sum();
}

void equalize_channel(const uint8_t* src, uint8_t* dst, int64_t n) {
  int64_t hist[256] = {0};
  for (int64_t k = 0; k < n; ++k) ++hist[src[k]];
  // step = (sum of the nonzero bins but the last) // 255.
  int64_t last = 255;
  while (last > 0 && hist[last] == 0) --last;
  const int64_t step = (n - hist[last]) / 255;
  if (step == 0) {
    if (dst != src) std::memcpy(dst, src, static_cast<size_t>(n));
    return;
  }
  // lut[v] = (cumsum up to v - 1 + step // 2) // step, clamped to 255 (torchvision shifts by one).
  uint8_t lut[256];
  int64_t cum = 0;
  for (int v = 0; v < 256; ++v) {
    const int64_t value = (cum + step / 2) / step;
    lut[v] = static_cast<uint8_t>(std::min<int64_t>(value, 255));
    cum += hist[v];
  }
  for (int64_t k = 0; k < n; ++k) dst[k] = lut[src[k]];
}

}  // namespace

at::Tensor rgb_to_grayscale(const at::Tensor& image, int64_t num_output_channels) {
  check_color_image(image, "rgb_to_grayscale");
  BIRDPLANE_CHECK(num_output_channels == 1 || num_output_channels == 3,
                  "rgb_to_grayscale: num_output_channels is {}; allowed: 1 or 3", num_output_channels);
  at::Tensor l;
  if (image.size(-3) == 3) {
    auto rgb = image.unbind(-3);
    l = (rgb[0] * 0.2989 + rgb[1] * 0.587 + rgb[2] * 0.114).to(image.scalar_type()).unsqueeze(-3);
  } else {
    l = image.clone();
  }
  if (num_output_channels == 3) {
    auto sizes = image.sizes().vec();
    sizes[sizes.size() - 3] = 3;
    return l.expand(sizes).contiguous();
  }
  return l;
}

at::Tensor adjust_brightness(const at::Tensor& image, double brightness_factor) {
  check_factor(brightness_factor, "adjust_brightness", "brightness_factor");
  check_color_image(image, "adjust_brightness");
  return blend(image, at::zeros_like(image), brightness_factor);
}

at::Tensor adjust_contrast(const at::Tensor& image, double contrast_factor) {
  check_factor(contrast_factor, "adjust_contrast", "contrast_factor");
  check_color_image(image, "adjust_contrast");
  const auto dtype = work_type(image);
  auto gray = image.size(-3) == 3 ? rgb_to_grayscale(image) : image;
  auto mean = at::mean(gray.to(dtype), {-3, -2, -1}, true);
  return blend(image, mean, contrast_factor);
}

at::Tensor adjust_saturation(const at::Tensor& image, double saturation_factor) {
  check_factor(saturation_factor, "adjust_saturation", "saturation_factor");
  check_color_image(image, "adjust_saturation");
  if (image.size(-3) == 1) return image;
  return blend(image, rgb_to_grayscale(image), saturation_factor);
}

at::Tensor adjust_hue(const at::Tensor& image, double hue_factor) {
  BIRDPLANE_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5, "adjust_hue: hue_factor is {}; allowed: -0.5 to 0.5",
                  hue_factor);
  check_color_image(image, "adjust_hue");
  if (image.size(-3) == 1) return image;
  const bool byte = image.scalar_type() == at::kByte;
  auto x = byte ? image.to(at::kFloat) / 255.0 : image;
  auto hsv = rgb2hsv(x).unbind(-3);
  auto h = at::remainder(hsv[0] + hue_factor, 1.0);
  auto out = hsv2rgb(at::stack({h, hsv[1], hsv[2]}, -3));
  if (byte) out = (out * 255.0).to(at::kByte);
  return out;
}

at::Tensor adjust_gamma(const at::Tensor& image, double gamma, double gain) {
  check_color_image(image, "adjust_gamma");
  BIRDPLANE_CHECK(gamma >= 0 && std::isfinite(gamma), "adjust_gamma: gamma is {}; it must be 0 or more", gamma);
  auto x = image.is_floating_point() ? image : image.to(at::kFloat) / 255.0;
  x = (x.pow(gamma) * gain).clamp(0, 1);
  // convert_image_dtype(float -> uint8): x * (255 + 1 - 1e-3), truncated.
  if (!image.is_floating_point()) x = (x * (255.0 + 1.0 - 1e-3)).to(image.scalar_type());
  return x;
}

at::Tensor adjust_sharpness(const at::Tensor& image, double sharpness_factor) {
  check_factor(sharpness_factor, "adjust_sharpness", "sharpness_factor");
  check_color_image(image, "adjust_sharpness");
  if (image.size(-1) <= 2 || image.size(-2) <= 2) return image;
  auto kernel = at::ones({3, 3}, at::TensorOptions().dtype(work_type(image)));
  kernel[1][1] = 5.0;
  kernel /= kernel.sum();
  auto smooth = depthwise(image, kernel, {0, 0, 0, 0});
  auto degenerate = image.clone();
  degenerate.narrow(-2, 1, image.size(-2) - 2).narrow(-1, 1, image.size(-1) - 2).copy_(smooth);
  return blend(image, degenerate, sharpness_factor);
}

at::Tensor invert(const at::Tensor& image) {
  check_color_image(image, "invert");
  return at::rsub(image, image.is_floating_point() ? 1 : 255);
}

at::Tensor posterize(const at::Tensor& image, int64_t bits) {
  BIRDPLANE_CHECK(bits >= 0 && bits <= 8, "posterize: bits is {}; allowed: 0 to 8", bits);
  check_color_image(image, "posterize");
  check_uint8(image, "posterize");
  // -(2^(8-bits)) as a byte is the mask of the top `bits` bits.
  const int64_t mask = (0xFF << (8 - bits)) & 0xFF;
  return at::bitwise_and(image, mask);
}

at::Tensor solarize(const at::Tensor& image, double threshold) {
  check_color_image(image, "solarize");
  const double bound = image.is_floating_point() ? 1 : 255;
  BIRDPLANE_CHECK(threshold <= bound, "solarize: threshold is {}; it must be at most {} for a {} image", threshold,
                  bound, c10::toString(image.scalar_type()));
  return at::where(image >= threshold, invert(image), image);
}

at::Tensor autocontrast(const at::Tensor& image) {
  check_color_image(image, "autocontrast");
  const double bound = image.is_floating_point() ? 1.0 : 255.0;
  const auto dtype = work_type(image);
  auto minimum = image.amin({-2, -1}, true).to(dtype);
  auto maximum = image.amax({-2, -1}, true).to(dtype);
  // Python's `bound / tensor` is tensor.reciprocal() * bound: keep that rounding.
  auto scale = (maximum - minimum).reciprocal() * bound;
  auto flat = at::isfinite(scale).logical_not();
  minimum.masked_fill_(flat, 0);
  scale.masked_fill_(flat, 1);
  return ((image - minimum) * scale).clamp(0, bound).to(image.scalar_type());
}

at::Tensor equalize(const at::Tensor& image) {
  check_color_image(image, "equalize");
  check_uint8(image, "equalize");
  auto src = image.contiguous();
  auto out = at::empty_like(src);
  const int64_t plane = image.size(-1) * image.size(-2);
  const int64_t planes = src.numel() / std::max<int64_t>(plane, 1);
  const uint8_t* s = src.data_ptr<uint8_t>();
  uint8_t* d = out.data_ptr<uint8_t>();
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) equalize_channel(s + k * plane, d + k * plane, plane);
  });
  return out;
}

at::Tensor gaussian_blur(const at::Tensor& image, std::array<int64_t, 2> kernel_size,
                         std::optional<std::array<double, 2>> sigma) {
  for (auto k : kernel_size)
    BIRDPLANE_CHECK(k > 0 && k % 2 == 1, "gaussian_blur: kernel_size {} must be odd and positive", k);
  if (!sigma) sigma = std::array<double, 2>{kernel_size[0] * 0.15 + 0.35, kernel_size[1] * 0.15 + 0.35};
  for (auto s : *sigma) BIRDPLANE_CHECK(s > 0, "gaussian_blur: sigma {} must be positive", s);
  check_image(image, "gaussian_blur");
  BIRDPLANE_CHECK(kernel_size[0] / 2 < image.size(-1) && kernel_size[1] / 2 < image.size(-2),
                  "gaussian_blur: kernel_size {}x{} is too large for a {}x{} image (reflect padding needs half the "
                  "kernel to be smaller than the image)",
                  kernel_size[0], kernel_size[1], image.size(-1), image.size(-2));
  const auto dtype = work_type(image);
  auto kx = gaussian_kernel1d(kernel_size[0], (*sigma)[0]).to(dtype);
  auto ky = gaussian_kernel1d(kernel_size[1], (*sigma)[1]).to(dtype);
  auto kernel = at::mm(ky.unsqueeze(1), kx.unsqueeze(0));
  const int64_t px = kernel_size[0] / 2, py = kernel_size[1] / 2;
  return depthwise(image, kernel, {px, px, py, py});
}

}  // namespace functional

namespace F = functional;

namespace {

void check_p(double p, const char* name) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "{}: p is {}; a probability is between 0 and 1", name, p);
}

std::string range_repr(const std::optional<std::array<double, 2>>& r) {
  if (!r) return "None";
  return fmt::format("[{}, {}]", (*r)[0], (*r)[1]);
}

}  // namespace

// --- RandomFlagTransform ---

RandomFlagTransform::RandomFlagTransform(const char* name, double p, at::Generator* generator, bool item_compare)
    : RandomTransform(generator), p_(p), item_compare_(item_compare) {
  check_p(p, name);
}

std::vector<bool> RandomFlagTransform::get_params(at::Generator& gen, int64_t count, double p, bool item_compare) {
  std::vector<bool> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const float r = rand_float(gen);
    // torchvision compares torch.rand(1).item() < p (as doubles) in RandomInvert & co., but the tensor
    // torch.rand(1) < p (p rounded to float) in RandomGrayscale.
    out[static_cast<size_t>(i)] = item_compare ? static_cast<double>(r) < p : r < static_cast<float>(p);
  }
  return out;
}

at::Tensor RandomFlagTransform::apply(const at::Tensor& input, const std::vector<bool>& flags) const {
  // The function works image by image, so running it on the chosen images as one batch is exact.
  return apply_flagged(input, flags, repr(), [this](const at::Tensor& x, const std::vector<int64_t>&) {
    return apply_all(x);
  });
}

at::Tensor RandomFlagTransform::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, get_params(gen, image_count(input), p_, item_compare_));
}

// --- Grayscale and the flag transforms ---

Grayscale::Grayscale(int64_t num_output_channels) : num_output_channels_(num_output_channels) {
  BIRDPLANE_CHECK(num_output_channels == 1 || num_output_channels == 3,
                  "Grayscale: num_output_channels is {}; allowed: 1 or 3", num_output_channels);
}
at::Tensor Grayscale::operator()(const at::Tensor& input) const {
  return F::rgb_to_grayscale(input, num_output_channels_);
}
std::string Grayscale::repr() const {
  return fmt::format("Grayscale(num_output_channels={})", num_output_channels_);
}

RandomGrayscale::RandomGrayscale(double p, at::Generator* generator)
    : RandomFlagTransform("RandomGrayscale", p, generator, /*item_compare=*/false) {}
at::Tensor RandomGrayscale::apply_all(const at::Tensor& x) const { return F::rgb_to_grayscale(x, x.size(-3)); }
std::string RandomGrayscale::repr() const { return fmt::format("RandomGrayscale(p={})", python_number(p_)); }

RandomInvert::RandomInvert(double p, at::Generator* generator) : RandomFlagTransform("RandomInvert", p, generator) {}
at::Tensor RandomInvert::apply_all(const at::Tensor& x) const { return F::invert(x); }
std::string RandomInvert::repr() const { return fmt::format("RandomInvert(p={})", python_number(p_)); }

RandomPosterize::RandomPosterize(int64_t bits, double p, at::Generator* generator)
    : RandomFlagTransform("RandomPosterize", p, generator), bits_(bits) {
  BIRDPLANE_CHECK(bits >= 0 && bits <= 8, "RandomPosterize: bits is {}; allowed: 0 to 8", bits);
}
at::Tensor RandomPosterize::apply_all(const at::Tensor& x) const { return F::posterize(x, bits_); }
std::string RandomPosterize::repr() const {
  return fmt::format("RandomPosterize(bits={},p={})", bits_, python_number(p_));
}

RandomSolarize::RandomSolarize(double threshold, double p, at::Generator* generator)
    : RandomFlagTransform("RandomSolarize", p, generator), threshold_(threshold) {
  BIRDPLANE_CHECK(std::isfinite(threshold), "RandomSolarize: threshold must be a finite number, got {}", threshold);
}
at::Tensor RandomSolarize::apply_all(const at::Tensor& x) const { return F::solarize(x, threshold_); }
std::string RandomSolarize::repr() const {
  return fmt::format("RandomSolarize(threshold={},p={})", python_number(threshold_), python_number(p_));
}

RandomAdjustSharpness::RandomAdjustSharpness(double sharpness_factor, double p, at::Generator* generator)
    : RandomFlagTransform("RandomAdjustSharpness", p, generator), factor_(sharpness_factor) {
  BIRDPLANE_CHECK(sharpness_factor >= 0 && std::isfinite(sharpness_factor),
                  "RandomAdjustSharpness: sharpness_factor is {}; it must be 0 or more", sharpness_factor);
}
at::Tensor RandomAdjustSharpness::apply_all(const at::Tensor& x) const { return F::adjust_sharpness(x, factor_); }
std::string RandomAdjustSharpness::repr() const {
  return fmt::format("RandomAdjustSharpness(sharpness_factor={},p={})", python_number(factor_), python_number(p_));
}

RandomAutocontrast::RandomAutocontrast(double p, at::Generator* generator)
    : RandomFlagTransform("RandomAutocontrast", p, generator) {}
at::Tensor RandomAutocontrast::apply_all(const at::Tensor& x) const { return F::autocontrast(x); }
std::string RandomAutocontrast::repr() const { return fmt::format("RandomAutocontrast(p={})", python_number(p_)); }

RandomEqualize::RandomEqualize(double p, at::Generator* generator)
    : RandomFlagTransform("RandomEqualize", p, generator) {}
at::Tensor RandomEqualize::apply_all(const at::Tensor& x) const { return F::equalize(x); }
std::string RandomEqualize::repr() const { return fmt::format("RandomEqualize(p={})", python_number(p_)); }

// --- ColorJitter ---

namespace {

// torchvision's ColorJitter._check_input.
std::optional<std::array<double, 2>> check_jitter(const JitterRange& r, const char* name, double center, double lo,
                                                  double hi, bool clip_first_on_zero) {
  std::array<double, 2> v{};
  if (!r.is_range) {
    BIRDPLANE_CHECK(r.value.size() == 1, "ColorJitter: {} needs one number or a pair [min, max]", name);
    const double x = r.value[0];
    BIRDPLANE_CHECK(x >= 0 && std::isfinite(x), "ColorJitter: {} is {}; a single number must be 0 or more", name, x);
    v = {center - x, center + x};
    if (clip_first_on_zero) v[0] = std::max(v[0], 0.0);
    if (!clip_first_on_zero)
      BIRDPLANE_CHECK(v[1] <= hi, "ColorJitter: {} is {}; allowed: 0 to {}", name, x, hi);
  } else {
    BIRDPLANE_CHECK(r.value.size() == 2, "ColorJitter: {} range needs two values [min, max], got {}", name,
                    r.value.size());
    v = {r.value[0], r.value[1]};
    BIRDPLANE_CHECK(lo <= v[0] && v[0] <= v[1] && v[1] <= hi,
                    "ColorJitter: {} range [{}, {}] must satisfy {} <= min <= max <= {}", name, v[0], v[1], lo,
                    std::isinf(hi) ? std::string("inf") : python_number(hi));
  }
  if (v[0] == center && v[1] == center) return std::nullopt;
  return v;
}

}  // namespace

ColorJitter::ColorJitter(JitterRange brightness, JitterRange contrast, JitterRange saturation, JitterRange hue,
                         at::Generator* generator)
    : RandomTransform(generator) {
  const double inf = std::numeric_limits<double>::infinity();
  brightness_ = check_jitter(brightness, "brightness", 1, 0, inf, true);
  contrast_ = check_jitter(contrast, "contrast", 1, 0, inf, true);
  saturation_ = check_jitter(saturation, "saturation", 1, 0, inf, true);
  hue_ = check_jitter(hue, "hue", 0, -0.5, 0.5, false);
}

ColorJitter::Params ColorJitter::get_params(at::Generator& gen, const std::optional<std::array<double, 2>>& brightness,
                                            const std::optional<std::array<double, 2>>& contrast,
                                            const std::optional<std::array<double, 2>>& saturation,
                                            const std::optional<std::array<double, 2>>& hue) {
  Params p;
  auto perm = randperm(gen, 4);
  for (size_t i = 0; i < 4; ++i) p.order[i] = perm[i];
  auto draw = [&](const std::optional<std::array<double, 2>>& r) -> std::optional<double> {
    if (!r) return std::nullopt;
    return static_cast<double>(uniform(gen, (*r)[0], (*r)[1]));
  };
  p.brightness = draw(brightness);
  p.contrast = draw(contrast);
  p.saturation = draw(saturation);
  p.hue = draw(hue);
  return p;
}

at::Tensor ColorJitter::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  auto one = [](at::Tensor x, const Params& p) {
    for (auto fn : p.order) {
      if (fn == 0 && p.brightness) x = F::adjust_brightness(x, *p.brightness);
      else if (fn == 1 && p.contrast) x = F::adjust_contrast(x, *p.contrast);
      else if (fn == 2 && p.saturation) x = F::adjust_saturation(x, *p.saturation);
      else if (fn == 3 && p.hue) x = F::adjust_hue(x, *p.hue);
    }
    return x;
  };
  if (input.dim() == 3) {
    BIRDPLANE_CHECK(params.size() == 1, "ColorJitter: one image needs one parameter set, got {}", params.size());
    return one(input, params[0]);
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == input.size(0), "ColorJitter: {} parameter sets for a batch of {}",
                  params.size(), input.size(0));
  // Each image has its own order and factors; the adjustments on one image are the batched
  // functions on a batch of one, so the result equals torchvision's per-image call.
  auto out = at::empty_like(input);
  for (int64_t i = 0; i < input.size(0); ++i) out[i].copy_(one(input[i], params[static_cast<size_t>(i)]));
  return out;
}

at::Tensor ColorJitter::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, draw_per_image(input, [&] { return get_params(gen, brightness_, contrast_, saturation_, hue_); }));
}

std::string ColorJitter::repr() const {
  return fmt::format("ColorJitter(brightness={}, contrast={}, saturation={}, hue={})", range_repr(brightness_),
                     range_repr(contrast_), range_repr(saturation_), range_repr(hue_));
}

// --- GaussianBlur ---

GaussianBlur::GaussianBlur(std::array<int64_t, 2> kernel_size, std::array<double, 2> sigma, at::Generator* generator)
    : RandomTransform(generator), kernel_size_(kernel_size), sigma_(sigma) {
  for (auto k : kernel_size)
    BIRDPLANE_CHECK(k > 0 && k % 2 == 1, "GaussianBlur: kernel_size {} must be odd and positive", k);
  BIRDPLANE_CHECK(sigma[0] > 0 && sigma[0] <= sigma[1] && std::isfinite(sigma[1]),
                  "GaussianBlur: sigma ({}, {}) must be positive and of the form (min, max)", sigma[0], sigma[1]);
}

double GaussianBlur::get_params(at::Generator& gen, double sigma_min, double sigma_max) {
  return static_cast<double>(uniform(gen, sigma_min, sigma_max));
}

at::Tensor GaussianBlur::apply(const at::Tensor& input, const std::vector<double>& sigmas) const {
  if (input.dim() == 3) {
    BIRDPLANE_CHECK(sigmas.size() == 1, "GaussianBlur: one image needs one sigma, got {}", sigmas.size());
    return F::gaussian_blur(input, kernel_size_, std::array<double, 2>{sigmas[0], sigmas[0]});
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(sigmas.size()) == input.size(0), "GaussianBlur: {} sigmas for a batch of {}",
                  sigmas.size(), input.size(0));
  // One kernel per image; a per-image conv keeps torchvision's exact sums.
  auto out = at::empty_like(input);
  for (int64_t i = 0; i < input.size(0); ++i) {
    const double s = sigmas[static_cast<size_t>(i)];
    out[i].copy_(F::gaussian_blur(input[i], kernel_size_, std::array<double, 2>{s, s}));
  }
  return out;
}

at::Tensor GaussianBlur::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, draw_per_image(input, [&] { return get_params(gen, sigma_[0], sigma_[1]); }));
}

std::string GaussianBlur::repr() const {
  return fmt::format("GaussianBlur(kernel_size=({}, {}), sigma=({}, {}))", kernel_size_[0], kernel_size_[1],
                     python_repr(sigma_[0]), python_repr(sigma_[1]));
}

}  // namespace birdplane::transforms
