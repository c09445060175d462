#include "birdplane/transforms/geometry.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"
#include "transforms/internal.h"

namespace birdplane::transforms {
namespace {

// Row copies for uint8 images, inlined: rows here are a few dozen bytes, where a libc call per row
// costs more than the copy. Eight bytes at a time through a register, then the tail.
inline void copy_row(uint8_t* d, const uint8_t* s, int64_t n) {
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    uint64_t v;
    std::memcpy(&v, s + x, 8);
    std::memcpy(d + x, &v, 8);
  }
  for (; x < n; ++x) d[x] = s[x];
}

// d[x] = s[n - 1 - x]: eight bytes loaded from the far end, byte-swapped, stored at the near end.
inline void reverse_row(uint8_t* d, const uint8_t* s, int64_t n) {
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    uint64_t v;
    std::memcpy(&v, s + n - x - 8, 8);
    v = __builtin_bswap64(v);
    std::memcpy(d + x, &v, 8);
  }
  for (; x < n; ++x) d[x] = s[n - 1 - x];
}

}  // namespace

namespace functional {

namespace {


// The name in lower case without an enum prefix ("InterpolationMode.BICUBIC" -> "bicubic").
std::string lower(const std::string& name) {
  std::string s = to_lower(name);
  if (auto dot = s.rfind('.'); dot != std::string::npos) s = s.substr(dot + 1);
  return s;
}

// {h, w} from torchvision's size argument: one value (square) or two.
std::array<int64_t, 2> size_hw(const std::vector<int64_t>& size, const std::string& who) {
  BIRDPLANE_CHECK(size.size() == 1 || size.size() == 2, "{}: size must have 1 or 2 values (h, w), got {}", who,
                  size.size());
  for (int64_t v : size) BIRDPLANE_CHECK(v >= 1, "{}: size must be 1 or more, got {}", who, v);
  return size.size() == 1 ? std::array<int64_t, 2>{size[0], size[0]} : std::array<int64_t, 2>{size[0], size[1]};
}

// torchvision's _pad_symmetric: mirror including the border pixel, by index lists per axis.
at::Tensor pad_symmetric(const at::Tensor& image, const std::array<int64_t, 4>& p) {
  auto indices = [](int64_t before, int64_t n, int64_t after) {
    std::vector<int64_t> idx;
    for (int64_t i = before - 1; i >= 0; --i) idx.push_back(i);
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    for (int64_t i = 0; i < after; ++i) idx.push_back(n - 1 - i);
    return torch::tensor(idx, torch::kInt64);
  };
  const int64_t h = image.size(-2), w = image.size(-1);
  return image.index_select(-1, indices(p[0], w, p[2])).index_select(-2, indices(p[1], h, p[3]));
}

void check_window(int64_t top, int64_t left, int64_t height, int64_t width, int64_t h, int64_t w) {
  BIRDPLANE_CHECK(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= h && left + width <= w,
                  "crop: the window top={} left={} height={} width={} does not fit a {}x{} image", top, left,
                  height, width, h, w);
}

}  // namespace

at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  check_image(image, "crop");
  check_window(top, left, height, width, image.size(-2), image.size(-1));
  return image.narrow(-2, top, height).narrow(-1, left, width);
}

at::Tensor pad_constant(const at::Tensor& image, int64_t left, int64_t top, int64_t right, int64_t bottom,
                        double fill) {
  BIRDPLANE_CHECK(left >= 0 && top >= 0 && right >= 0 && bottom >= 0,
                  "padding must be 0 or more pixels, got left={} top={} right={} bottom={}", left, top, right,
                  bottom);
  return at::constant_pad_nd(image, {left, right, top, bottom}, fill);
}

std::string to_string(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::kConstant: return "constant";
    case PaddingMode::kEdge: return "edge";
    case PaddingMode::kReflect: return "reflect";
    case PaddingMode::kSymmetric: return "symmetric";
  }
  return "constant";
}

PaddingMode padding_mode_from_string(const std::string& name) {
  for (auto m : {PaddingMode::kConstant, PaddingMode::kEdge, PaddingMode::kReflect, PaddingMode::kSymmetric})
    if (lower(name) == to_string(m)) return m;
  fail("padding_mode '{}' is not one of constant, edge, reflect, symmetric", name);
}

std::string to_string(InterpolationMode mode) {
  switch (mode) {
    case InterpolationMode::kNearest: return "nearest";
    case InterpolationMode::kBilinear: return "bilinear";
    case InterpolationMode::kBicubic: return "bicubic";
  }
  return "bilinear";
}

InterpolationMode interpolation_from_string(const std::string& name) {
  for (auto m : {InterpolationMode::kNearest, InterpolationMode::kBilinear, InterpolationMode::kBicubic})
    if (lower(name) == to_string(m)) return m;
  fail("interpolation '{}' is not one of nearest, bilinear, bicubic", name);
}

std::array<int64_t, 4> expand_padding(const std::vector<int64_t>& padding, const std::string& who) {
  std::array<int64_t, 4> p{};
  if (padding.size() == 1) {
    p = {padding[0], padding[0], padding[0], padding[0]};
  } else if (padding.size() == 2) {
    p = {padding[0], padding[1], padding[0], padding[1]};
  } else if (padding.size() == 4) {
    p = {padding[0], padding[1], padding[2], padding[3]};
  } else {
    fail("{}: padding must have 1, 2 or 4 values (all sides; left/right, top/bottom; left, top, right, bottom), "
         "got {}",
         who, padding.size());
  }
  for (int64_t v : p) BIRDPLANE_CHECK(v >= 0, "{}: padding must be 0 or more pixels, got {}", who, v);
  return p;
}

at::Tensor pad(const at::Tensor& image, const std::vector<int64_t>& padding, double fill, PaddingMode mode) {
  check_image(image, "pad");
  const auto p = expand_padding(padding, "pad");
  const int64_t h = image.size(-2), w = image.size(-1);
  if (mode == PaddingMode::kConstant) return at::constant_pad_nd(image, {p[0], p[2], p[1], p[3]}, fill);
  if (mode == PaddingMode::kSymmetric) {
    BIRDPLANE_CHECK(std::max(p[0], p[2]) <= w && std::max(p[1], p[3]) <= h,
                    "pad: symmetric padding (left={} top={} right={} bottom={}) must not exceed the image size {}x{}",
                    p[0], p[1], p[2], p[3], h, w);
    return pad_symmetric(image, p);
  }
  if (mode == PaddingMode::kReflect)
    BIRDPLANE_CHECK(std::max(p[0], p[2]) < w && std::max(p[1], p[3]) < h,
                    "pad: reflect padding (left={} top={} right={} bottom={}) must be smaller than the image size "
                    "{}x{} (torch's limit); use symmetric or edge padding",
                    p[0], p[1], p[2], p[3], h, w);
  // torchvision pads edge/reflect in float (pytorch issue 40763) and casts back: exact for pixels.
  auto x = image.dim() == 3 ? image.unsqueeze(0) : image;
  const bool cast = !x.is_floating_point();
  if (cast) x = x.to(torch::kFloat32);
  std::vector<int64_t> lrtb{p[0], p[2], p[1], p[3]};
  x = mode == PaddingMode::kEdge ? at::replication_pad2d(x, lrtb) : at::reflection_pad2d(x, lrtb);
  if (cast) x = x.to(image.scalar_type());
  return image.dim() == 3 ? x.squeeze(0) : x;
}

at::Tensor hflip(const at::Tensor& image) { return image.flip({-1}); }
at::Tensor vflip(const at::Tensor& image) { return image.flip({-2}); }

std::array<int64_t, 2> resized_output_size(int64_t height, int64_t width, const std::vector<int64_t>& size,
                                           std::optional<int64_t> max_size) {
  BIRDPLANE_CHECK(size.size() == 1 || size.size() == 2, "resize: size must have 1 or 2 values, got {}", size.size());
  for (int64_t v : size) BIRDPLANE_CHECK(v >= 1, "resize: size must be 1 or more, got {}", v);
  if (size.size() == 2) {
    BIRDPLANE_CHECK(!max_size, "resize: max_size is only allowed when size is one value (the smaller edge)");
    return {size[0], size[1]};
  }
  const bool wide = width > height;  // torchvision: short = w when w <= h
  const int64_t short_side = wide ? height : width, long_side = wide ? width : height;
  int64_t new_short = size[0];
  // Python: int(requested * long / short), true division then truncation.
  int64_t new_long = static_cast<int64_t>(static_cast<double>(new_short * long_side) / static_cast<double>(short_side));
  if (max_size) {
    BIRDPLANE_CHECK(*max_size > new_short, "resize: max_size = {} must be larger than the requested size {}", *max_size,
                    new_short);
    if (new_long > *max_size) {
      new_short = static_cast<int64_t>(static_cast<double>(*max_size * new_short) / static_cast<double>(new_long));
      new_long = *max_size;
    }
  }
  return wide ? std::array<int64_t, 2>{new_short, new_long} : std::array<int64_t, 2>{new_long, new_short};
}

at::Tensor resize(const at::Tensor& image, const std::vector<int64_t>& size, InterpolationMode interpolation,
                  std::optional<int64_t> max_size, bool antialias) {
  check_image(image, "resize");
  BIRDPLANE_CHECK(!antialias || interpolation != InterpolationMode::kNearest,
                  "resize: antialias works with bilinear and bicubic interpolation only, not nearest");
  const auto out = resized_output_size(image.size(-2), image.size(-1), size, max_size);
  if (out[0] == image.size(-2) && out[1] == image.size(-1)) return image;
  // torchvision's _cast_squeeze_in / _cast_squeeze_out around torch's interpolate.
  auto x = image.dim() == 3 ? image.unsqueeze(0) : image;
  const auto dtype = image.scalar_type();
  const bool cast = dtype != torch::kFloat32 && dtype != torch::kFloat64;
  if (cast) x = x.to(torch::kFloat32);
  const std::vector<int64_t> osize{out[0], out[1]};
  const c10::optional<double> none;
  switch (interpolation) {
    case InterpolationMode::kNearest: x = at::upsample_nearest2d(x, osize, none, none); break;
    case InterpolationMode::kBilinear:
      x = antialias ? at::_upsample_bilinear2d_aa(x, osize, false, none, none)
                    : at::upsample_bilinear2d(x, osize, false, none, none);
      break;
    case InterpolationMode::kBicubic:
      x = antialias ? at::_upsample_bicubic2d_aa(x, osize, false, none, none)
                    : at::upsample_bicubic2d(x, osize, false, none, none);
      if (dtype == torch::kUInt8) x = x.clamp(0, 255);
      break;
  }
  if (image.dim() == 3) x = x.squeeze(0);
  if (cast) {
    if (!at::isFloatingType(dtype)) x = x.round();
    x = x.to(dtype);
  }
  return x;
}

at::Tensor center_crop(const at::Tensor& image, const std::vector<int64_t>& size) {
  check_image(image, "center_crop");
  const auto [ch, cw] = size_hw(size, "center_crop");
  at::Tensor img = image;
  int64_t h = img.size(-2), w = img.size(-1);
  if (cw > w || ch > h) {
    img = functional::pad(img, {cw > w ? (cw - w) / 2 : 0, ch > h ? (ch - h) / 2 : 0, cw > w ? (cw - w + 1) / 2 : 0,
                    ch > h ? (ch - h + 1) / 2 : 0});
    h = img.size(-2);
    w = img.size(-1);
    if (ch == h && cw == w) return img;
  }
  const int64_t top = round_half_even(static_cast<double>(h - ch) / 2.0);
  const int64_t left = round_half_even(static_cast<double>(w - cw) / 2.0);
  return crop(img, top, left, ch, cw);
}

at::Tensor resized_crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
                        const std::vector<int64_t>& size, InterpolationMode interpolation, bool antialias) {
  return resize(crop(image, top, left, height, width), size, interpolation, std::nullopt, antialias);
}

std::vector<at::Tensor> five_crop(const at::Tensor& image, const std::vector<int64_t>& size) {
  check_image(image, "five_crop");
  const auto [ch, cw] = size_hw(size, "five_crop");
  const int64_t h = image.size(-2), w = image.size(-1);
  BIRDPLANE_CHECK(ch <= h && cw <= w, "five_crop: the crop {}x{} is larger than the image {}x{}", ch, cw, h, w);
  return {crop(image, 0, 0, ch, cw), crop(image, 0, w - cw, ch, cw), crop(image, h - ch, 0, ch, cw),
          crop(image, h - ch, w - cw, ch, cw), center_crop(image, {ch, cw})};
}

std::vector<at::Tensor> ten_crop(const at::Tensor& image, const std::vector<int64_t>& size, bool vertical_flip) {
  auto out = five_crop(image, size);
  auto second = five_crop(vertical_flip ? vflip(image) : hflip(image), size);
  out.insert(out.end(), second.begin(), second.end());
  return out;
}

}  // namespace functional


namespace {

std::string list_text(const std::vector<int64_t>& v) {
  return v.size() == 1 ? std::to_string(v[0]) : fmt::format("[{}]", fmt::join(v, ", "));
}

std::string bool_text(std::optional<bool> b) { return b ? (*b ? "True" : "False") : "None"; }

// One flag per image from torch.rand(1) < p, as both random flips draw them.
std::vector<bool> draw_flags(at::Generator& gen, int64_t count, double p) {
  std::vector<bool> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = rand_float(gen) < static_cast<float>(p);
  return out;
}

void check_range(const std::array<double, 2>& r, const char* who, const char* name) {
  BIRDPLANE_CHECK(r[0] <= r[1], "{}: {} must be (min, max) with min <= max, got ({}, {})", who, name, r[0], r[1]);
}

}  // namespace

Resize::Resize(std::vector<int64_t> size, functional::InterpolationMode interpolation, std::optional<int64_t> max_size,
               std::optional<bool> antialias)
    : size_(std::move(size)), interpolation_(interpolation), max_size_(max_size), antialias_(antialias) {
  BIRDPLANE_CHECK(size_.size() == 1 || size_.size() == 2, "Resize: size must have 1 or 2 values, got {}", size_.size());
  for (int64_t v : size_) BIRDPLANE_CHECK(v >= 1, "Resize: size must be 1 or more, got {}", v);
  if (max_size_) {
    BIRDPLANE_CHECK(size_.size() == 1, "Resize: max_size is only allowed when size is one value (the smaller edge)");
    BIRDPLANE_CHECK(*max_size_ > size_[0], "Resize: max_size = {} must be larger than size = {}", *max_size_,
                    size_[0]);
  }
  BIRDPLANE_CHECK(!antialias_.value_or(false) || interpolation_ != functional::InterpolationMode::kNearest,
                  "Resize: antialias works with bilinear and bicubic interpolation only, not nearest");
}

at::Tensor Resize::operator()(const at::Tensor& input) const {
  return functional::resize(input, size_, interpolation_, max_size_, antialias_.value_or(false));
}

std::string Resize::repr() const {
  return fmt::format("Resize(size={}, interpolation={}, max_size={}, antialias={})", list_text(size_),
                     functional::to_string(interpolation_), max_size_ ? std::to_string(*max_size_) : "None",
                     bool_text(antialias_));
}

CenterCrop::CenterCrop(std::vector<int64_t> size) : size_(functional::size_hw(size, "CenterCrop")) {}

at::Tensor CenterCrop::operator()(const at::Tensor& input) const {
  return functional::center_crop(input, {size_[0], size_[1]});
}

std::string CenterCrop::repr() const { return fmt::format("CenterCrop(size=({}, {}))", size_[0], size_[1]); }

Pad::Pad(std::vector<int64_t> padding, double fill, functional::PaddingMode padding_mode)
    : padding_(std::move(padding)), fill_(fill), padding_mode_(padding_mode) {
  functional::expand_padding(padding_, "Pad");
}

at::Tensor Pad::operator()(const at::Tensor& input) const {
  return functional::pad(input, padding_, fill_, padding_mode_);
}

std::string Pad::repr() const {
  return fmt::format("Pad(padding={}, fill={}, padding_mode={})", list_text(padding_), fill_,
                     functional::to_string(padding_mode_));
}

RandomCrop::RandomCrop(int64_t size, int64_t padding, double fill, at::Generator* generator)
    : RandomCrop(RandomCropOptions(size).padding({padding}).fill(fill), generator) {}

RandomCrop::RandomCrop(const RandomCropOptions& options, at::Generator* generator)
    : RandomTransform(generator), options_(options), padding_given_(!options.padding().empty()) {
  BIRDPLANE_CHECK(options_.size().size() == 1 || options_.size().size() == 2,
                  "RandomCrop: size must have 1 or 2 values (h, w), got {}", options_.size().size());
  for (int64_t v : options_.size()) BIRDPLANE_CHECK(v >= 1, "RandomCrop: size must be 1 or more, got {}", v);
  out_h_ = options_.size()[0];
  out_w_ = options_.size().back();
  if (padding_given_) functional::expand_padding(options_.padding(), "RandomCrop");
}

RandomCrop::Params RandomCrop::get_params(at::Generator& gen, int64_t height, int64_t width, int64_t out_h,
                                          int64_t out_w) {
  BIRDPLANE_CHECK(out_h <= height && out_w <= width,
                  "RandomCrop: the crop {}x{} is larger than the (padded) image {}x{}; pad it (padding=, "
                  "pad_if_needed=True)",
                  out_h, out_w, height, width);
  Params p{0, 0, out_h, out_w};
  if (height == out_h && width == out_w) return p;
  p.top = randint(gen, height - out_h + 1);
  p.left = randint(gen, width - out_w + 1);
  return p;
}

at::Tensor RandomCrop::pad(const at::Tensor& input) const {
  check_image(input, "RandomCrop");
  auto x = input;
  if (padding_given_) {
    const auto p = functional::expand_padding(options_.padding(), "RandomCrop");
    if (p != std::array<int64_t, 4>{0, 0, 0, 0})
      x = functional::pad(x, options_.padding(), options_.fill(), options_.padding_mode());
  }
  // torchvision pads both sides by the shortfall (so the window is then drawn from the larger image).
  const int64_t h = x.size(-2), w = x.size(-1);
  if (options_.pad_if_needed() && w < out_w_)
    x = functional::pad(x, {out_w_ - w, 0}, options_.fill(), options_.padding_mode());
  if (options_.pad_if_needed() && h < out_h_)
    x = functional::pad(x, {0, out_h_ - h}, options_.fill(), options_.padding_mode());
  return x;
}

namespace {

// Cuts each image's window out of the padded image or batch.
at::Tensor crop_windows(const at::Tensor& padded, const std::vector<RandomCrop::Params>& params, int64_t out_h,
                        int64_t out_w) {
  for (const auto& p : params)
    BIRDPLANE_CHECK(p.height == out_h && p.width == out_w, "RandomCrop: a {}x{} window for a {}x{} crop", p.height,
                    p.width, out_h, out_w);
  if (padded.dim() == 3) {
    BIRDPLANE_CHECK(params.size() == 1, "RandomCrop: one image needs one set of parameters");
    return functional::crop(padded, params[0].top, params[0].left, out_h, out_w).contiguous();
  }
  const int64_t n = padded.size(0);
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == n, "RandomCrop: {} parameter sets for a batch of {}",
                  params.size(), n);
  auto out = torch::empty({n, padded.size(1), out_h, out_w}, padded.options());
  if (padded.scalar_type() == torch::kUInt8 && padded.is_contiguous()) {
    // Row copies straight from the padded batch: no tensor op per image.
    const int64_t c = padded.size(1), ph = padded.size(2), pw = padded.size(3);
    const uint8_t* src = padded.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
      const auto& p = params[static_cast<size_t>(i)];
      functional::check_window(p.top, p.left, out_h, out_w, ph, pw);
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < out_h; ++y)
          std::memcpy(dst + ((i * c + ch) * out_h + y) * out_w, src + ((i * c + ch) * ph + p.top + y) * pw + p.left,
                      static_cast<size_t>(out_w));
    }
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    out[i].copy_(functional::crop(padded[i], p.top, p.left, p.height, p.width));
  }
  return out;
}

// The same windows cut straight from an unpadded contiguous uint8 batch with constant padding
// `pad` = {left, top, right, bottom} of `fill`: rows outside the image are filled, rows inside are
// one memcpy plus fills at the edges. Saves building the padded batch (what training runs per batch).
at::Tensor crop_windows_constant(const at::Tensor& input, std::array<int64_t, 4> pad, uint8_t fill,
                                 const std::vector<RandomCrop::Params>& params, int64_t out_h, int64_t out_w) {
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t ph = h + pad[1] + pad[3], pw = w + pad[0] + pad[2];
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == n, "RandomCrop: {} parameter sets for a batch of {}",
                  params.size(), n);
  auto out = torch::empty({n, c, out_h, out_w}, input.options());
  const uint8_t* src = input.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    BIRDPLANE_CHECK(p.height == out_h && p.width == out_w, "RandomCrop: a {}x{} window for a {}x{} crop", p.height,
                    p.width, out_h, out_w);
    functional::check_window(p.top, p.left, out_h, out_w, ph, pw);
    // Columns [x0, x1) of the window come from the image; the rest is fill.
    const int64_t sx = p.left - pad[0];
    const int64_t x0 = std::clamp<int64_t>(-sx, 0, out_w), x1 = std::clamp<int64_t>(w - sx, 0, out_w);
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < out_h; ++y) {
        uint8_t* row = dst + ((i * c + ch) * out_h + y) * out_w;
        const int64_t sy = p.top - pad[1] + y;
        if (sy < 0 || sy >= h || x1 <= x0) {
          std::memset(row, fill, static_cast<size_t>(out_w));
          continue;
        }
        if (x0 > 0) std::memset(row, fill, static_cast<size_t>(x0));
        copy_row(row + x0, src + ((i * c + ch) * h + sy) * w + sx + x0, x1 - x0);
        if (x1 < out_w) std::memset(row + x1, fill, static_cast<size_t>(out_w - x1));
      }
    }
  }
  return out;
}

}  // namespace

bool RandomCrop::fused_constant_path(const at::Tensor& input) const {
  return input.dim() == 4 && input.scalar_type() == torch::kUInt8 && input.is_contiguous() &&
         options_.padding_mode() == functional::PaddingMode::kConstant && !options_.pad_if_needed() &&
         options_.fill() >= 0 && options_.fill() <= 255 && options_.fill() == std::floor(options_.fill());
}

std::array<int64_t, 4> RandomCrop::padding_ltrb() const {
  if (!padding_given_) return {0, 0, 0, 0};
  return functional::expand_padding(options_.padding(), "RandomCrop");
}

at::Tensor RandomCrop::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  if (fused_constant_path(input))
    return crop_windows_constant(input, padding_ltrb(), static_cast<uint8_t>(options_.fill()), params, out_h_, out_w_);
  return crop_windows(this->pad(input), params, out_h_, out_w_);
}

at::Tensor RandomCrop::forward(const at::Tensor& input, at::Generator& gen) const {
  if (fused_constant_path(input)) {
    const auto p = padding_ltrb();
    const int64_t h = input.size(2) + p[1] + p[3], w = input.size(3) + p[0] + p[2];
    const auto params = draw_per_image(input, [&] { return get_params(gen, h, w, out_h_, out_w_); });
    return crop_windows_constant(input, p, static_cast<uint8_t>(options_.fill()), params, out_h_, out_w_);
  }
  auto padded = this->pad(input);
  const int64_t h = padded.size(-2), w = padded.size(-1);
  const auto params = draw_per_image(input, [&] { return get_params(gen, h, w, out_h_, out_w_); });
  return crop_windows(padded, params, out_h_, out_w_);
}

std::string RandomCrop::repr() const {
  return fmt::format("RandomCrop(size=({}, {}), padding={})", out_h_, out_w_,
                     padding_given_ ? list_text(options_.padding()) : "None");
}

RandomResizedCrop::RandomResizedCrop(std::vector<int64_t> size, std::array<double, 2> scale, std::array<double, 2> ratio,
                                     functional::InterpolationMode interpolation, std::optional<bool> antialias,
                                     at::Generator* generator)
    : RandomTransform(generator), size_(functional::size_hw(size, "RandomResizedCrop")), scale_(scale), ratio_(ratio),
      interpolation_(interpolation), antialias_(antialias) {
  check_range(scale_, "RandomResizedCrop", "scale");
  check_range(ratio_, "RandomResizedCrop", "ratio");
  BIRDPLANE_CHECK(scale_[0] >= 0, "RandomResizedCrop: scale must be 0 or more, got ({}, {})", scale_[0], scale_[1]);
  BIRDPLANE_CHECK(ratio_[0] > 0, "RandomResizedCrop: ratio must be positive, got ({}, {})", ratio_[0], ratio_[1]);
  BIRDPLANE_CHECK(!antialias_.value_or(false) || interpolation_ != functional::InterpolationMode::kNearest,
                  "RandomResizedCrop: antialias works with bilinear and bicubic interpolation only, not nearest");
}

RandomResizedCrop::Params RandomResizedCrop::get_params(at::Generator& gen, int64_t height, int64_t width,
                                                        std::array<double, 2> scale, std::array<double, 2> ratio) {
  const double area = static_cast<double>(height * width);
  // torch.log(torch.tensor(ratio)) and torch.exp(...) run in float32 on tensors, as torchvision does.
  auto log_ratio = at::log(torch::tensor({ratio[0], ratio[1]}, torch::kFloat32));
  const double log_lo = log_ratio[0].item<double>(), log_hi = log_ratio[1].item<double>();
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * static_cast<double>(uniform(gen, scale[0], scale[1]));
    const float log_aspect = uniform(gen, log_lo, log_hi);
    const double aspect = at::exp(torch::full({1}, log_aspect, torch::kFloat32)).item<double>();
    const int64_t w = functional::round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = functional::round_half_even(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = randint(gen, height - h + 1);
      const int64_t left = randint(gen, width - w + 1);
      return {top, left, h, w};
    }
  }
  // Fallback: the central crop, clamped to the ratio range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  const double lo = std::min(ratio[0], ratio[1]), hi = std::max(ratio[0], ratio[1]);
  int64_t w = width, h = height;
  if (in_ratio < lo) {
    h = functional::round_half_even(static_cast<double>(w) / lo);
  } else if (in_ratio > hi) {
    w = functional::round_half_even(static_cast<double>(h) * hi);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

at::Tensor RandomResizedCrop::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  const std::vector<int64_t> size{size_[0], size_[1]};
  const bool aa = antialias_.value_or(false);
  if (input.dim() == 3) {
    BIRDPLANE_CHECK(params.size() == 1, "RandomResizedCrop: one image needs one set of parameters");
    const auto& p = params[0];
    return functional::resized_crop(input, p.top, p.left, p.height, p.width, size, interpolation_, aa);
  }
  check_image(input, "RandomResizedCrop");
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == input.size(0),
                  "RandomResizedCrop: {} parameter sets for a batch of {}", params.size(), input.size(0));
  // Each window has its own size, so each image is resized on its own.
  auto out = torch::empty({input.size(0), input.size(1), size_[0], size_[1]}, input.options());
  for (int64_t i = 0; i < input.size(0); ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    out[i].copy_(functional::resized_crop(input[i], p.top, p.left, p.height, p.width, size, interpolation_, aa));
  }
  return out;
}

at::Tensor RandomResizedCrop::forward(const at::Tensor& input, at::Generator& gen) const {
  check_image(input, "RandomResizedCrop");
  return apply(input, draw_per_image(input, [&] { return get_params(gen, input.size(-2), input.size(-1), scale_, ratio_); }));
}

std::string RandomResizedCrop::repr() const {
  auto r4 = [](double v) { return std::round(v * 1e4) / 1e4; };
  return fmt::format("RandomResizedCrop(size=({}, {}), scale=({}, {}), ratio=({}, {}), interpolation={}, antialias={})",
                     size_[0], size_[1], python_repr(r4(scale_[0])), python_repr(r4(scale_[1])),
                     python_repr(r4(ratio_[0])), python_repr(r4(ratio_[1])), functional::to_string(interpolation_),
                     bool_text(antialias_));
}

FiveCrop::FiveCrop(std::vector<int64_t> size) : size_(functional::size_hw(size, "FiveCrop")) {}

at::Tensor FiveCrop::operator()(const at::Tensor& input) const {
  return torch::stack(functional::five_crop(input, {size_[0], size_[1]}), input.dim() == 4 ? 1 : 0);
}

std::string FiveCrop::repr() const { return fmt::format("FiveCrop(size=({}, {}))", size_[0], size_[1]); }

TenCrop::TenCrop(std::vector<int64_t> size, bool vertical_flip)
    : size_(functional::size_hw(size, "TenCrop")), vertical_flip_(vertical_flip) {}

at::Tensor TenCrop::operator()(const at::Tensor& input) const {
  return torch::stack(functional::ten_crop(input, {size_[0], size_[1]}, vertical_flip_), input.dim() == 4 ? 1 : 0);
}

std::string TenCrop::repr() const {
  return fmt::format("TenCrop(size=({}, {}), vertical_flip={})", size_[0], size_[1], vertical_flip_ ? "True" : "False");
}

RandomHorizontalFlip::RandomHorizontalFlip(double p, at::Generator* generator)
    : RandomTransform(generator), p_(p) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p is {}; a probability is between 0 and 1", p);
}

std::vector<bool> RandomHorizontalFlip::get_params(at::Generator& gen, int64_t count, double p) {
  // One torch.rand(1) per image, in order, exactly as torchvision's forward() draws it.
  return draw_flags(gen, count, p);
}

at::Tensor RandomHorizontalFlip::apply(const at::Tensor& input, const std::vector<bool>& flip) const {
  const bool any = std::find(flip.begin(), flip.end(), true) != flip.end();
  if (input.dim() == 4 && static_cast<int64_t>(flip.size()) == input.size(0) && any &&
      input.scalar_type() == torch::kUInt8 && input.is_contiguous()) {
    // One pass into a new batch: each chosen image's rows written reversed, the others copied whole.
    auto out = at::empty_like(input);
    const int64_t rows = input.size(1) * input.size(2), w = input.size(3), image = rows * w;
    const uint8_t* src = input.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    for (int64_t i = 0; i < input.size(0); ++i) {
      const uint8_t* s = src + i * image;
      uint8_t* d = dst + i * image;
      if (!flip[static_cast<size_t>(i)]) {
        std::memcpy(d, s, static_cast<size_t>(image));
        continue;
      }
      for (int64_t r = 0; r < rows; ++r, s += w, d += w) reverse_row(d, s, w);
    }
    return out;
  }
  return apply_flagged(input, flip, "RandomHorizontalFlip",
                       [](const at::Tensor& x, const std::vector<int64_t>&) { return functional::hflip(x); });
}

at::Tensor RandomHorizontalFlip::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, get_params(gen, image_count(input), p_));
}

std::string RandomHorizontalFlip::repr() const { return fmt::format("RandomHorizontalFlip(p={})", p_); }

RandomVerticalFlip::RandomVerticalFlip(double p, at::Generator* generator)
    : RandomTransform(generator), p_(p) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomVerticalFlip: p is {}; a probability is between 0 and 1", p);
}

std::vector<bool> RandomVerticalFlip::get_params(at::Generator& gen, int64_t count, double p) {
  return draw_flags(gen, count, p);
}

at::Tensor RandomVerticalFlip::apply(const at::Tensor& input, const std::vector<bool>& flip) const {
  return apply_flagged(input, flip, "RandomVerticalFlip",
                       [](const at::Tensor& x, const std::vector<int64_t>&) { return functional::vflip(x); });
}

at::Tensor RandomVerticalFlip::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, get_params(gen, image_count(input), p_));
}

std::string RandomVerticalFlip::repr() const { return fmt::format("RandomVerticalFlip(p={})", p_); }

}  // namespace birdplane::transforms
