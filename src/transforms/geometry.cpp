#include "birdplane/transforms/geometry.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/random.h"

namespace birdplane::transforms {
namespace functional {

namespace {

void check_window(int64_t top, int64_t left, int64_t height, int64_t width, int64_t h, int64_t w) {
  BIRDPLANE_CHECK(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= h && left + width <= w,
                  "crop: the window top={} left={} height={} width={} does not fit a {}x{} image", top, left,
                  height, width, h, w);
}

}  // namespace

at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  BIRDPLANE_CHECK(image.dim() == 3 || image.dim() == 4, "crop expects [C,H,W] or [B,C,H,W], got {} dims",
                  image.dim());
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

at::Tensor hflip(const at::Tensor& image) { return image.flip({-1}); }
at::Tensor vflip(const at::Tensor& image) { return image.flip({-2}); }

}  // namespace functional


RandomCrop::RandomCrop(int64_t size, int64_t padding, double fill, at::Generator* generator)
    : size_(size), padding_(padding), fill_(fill), generator_(generator) {
  BIRDPLANE_CHECK(size >= 1, "RandomCrop: size must be 1 or more, got {}", size);
  BIRDPLANE_CHECK(padding >= 0, "RandomCrop: padding must be 0 or more, got {}", padding);
}

RandomCrop::Params RandomCrop::get_params(at::Generator& gen, int64_t height, int64_t width, int64_t out_h,
                                          int64_t out_w) {
  BIRDPLANE_CHECK(out_h <= height && out_w <= width,
                  "RandomCrop: the crop {}x{} is larger than the (padded) image {}x{}", out_h, out_w, height, width);
  Params p{0, 0, out_h, out_w};
  if (height == out_h && width == out_w) return p;
  p.top = randint(gen, height - out_h + 1);
  p.left = randint(gen, width - out_w + 1);
  return p;
}

at::Tensor RandomCrop::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  auto padded = padding_ > 0 ? functional::pad_constant(input, padding_, padding_, padding_, padding_, fill_) : input;
  if (input.dim() == 3) {
    BIRDPLANE_CHECK(params.size() == 1, "RandomCrop: one image needs one set of parameters");
    return functional::crop(padded, params[0].top, params[0].left, params[0].height, params[0].width).contiguous();
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(params.size()) == input.size(0),
                  "RandomCrop: {} parameter sets for a batch of {}", params.size(), input.size(0));
  auto out = torch::empty({input.size(0), input.size(1), size_, size_}, input.options());
  if (padded.scalar_type() == torch::kUInt8 && padded.is_contiguous()) {
    // Row copies straight from the padded batch: no tensor op per image.
    const int64_t c = padded.size(1), ph = padded.size(2), pw = padded.size(3);
    const uint8_t* src = padded.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    for (int64_t i = 0; i < input.size(0); ++i) {
      const auto& p = params[static_cast<size_t>(i)];
      BIRDPLANE_CHECK(p.height == size_ && p.width == size_, "RandomCrop: a {}x{} window for a {}-pixel crop",
                      p.height, p.width, size_);
      functional::check_window(p.top, p.left, size_, size_, ph, pw);
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < size_; ++y)
          std::memcpy(dst + ((i * c + ch) * size_ + y) * size_,
                      src + ((i * c + ch) * ph + p.top + y) * pw + p.left, static_cast<size_t>(size_));
    }
    return out;
  }
  for (int64_t i = 0; i < input.size(0); ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    out[i].copy_(functional::crop(padded[i], p.top, p.left, p.height, p.width));
  }
  return out;
}

at::Tensor RandomCrop::operator()(const at::Tensor& input) const {
  return forward(input, generator_or_default(generator_));
}

at::Tensor RandomCrop::forward(const at::Tensor& input, at::Generator& gen) const {
  const int64_t h = input.size(-2) + 2 * padding_, w = input.size(-1) + 2 * padding_;
  const int64_t n = input.dim() == 4 ? input.size(0) : 1;
  std::vector<Params> params;
  for (int64_t i = 0; i < n; ++i) params.push_back(get_params(gen, h, w, size_, size_));
  return apply(input, params);
}

std::string RandomCrop::repr() const {
  return fmt::format("RandomCrop(size=({}, {}), padding={})", size_, size_, padding_);
}

RandomHorizontalFlip::RandomHorizontalFlip(double p, at::Generator* generator) : p_(p), generator_(generator) {
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p is {}; a probability is between 0 and 1", p);
}

std::vector<bool> RandomHorizontalFlip::get_params(at::Generator& gen, int64_t count, double p) {
  // One torch.rand(1) per image, in order, exactly as torchvision's forward() draws it.
  std::vector<bool> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = rand_float(gen) < static_cast<float>(p);
  return out;
}

at::Tensor RandomHorizontalFlip::apply(const at::Tensor& input, const std::vector<bool>& flip) const {
  if (input.dim() == 3) return flip.at(0) ? functional::hflip(input) : input;
  BIRDPLANE_CHECK(static_cast<int64_t>(flip.size()) == input.size(0),
                  "RandomHorizontalFlip: {} flags for a batch of {}", flip.size(), input.size(0));
  std::vector<int64_t> idx;
  for (size_t i = 0; i < flip.size(); ++i)
    if (flip[i]) idx.push_back(static_cast<int64_t>(i));
  if (idx.empty()) return input;
  if (input.scalar_type() == torch::kUInt8 && input.is_contiguous()) {
    // Reverse the rows of the chosen images in a copy: no tensor op per image.
    auto out = input.clone();
    const int64_t rows = input.size(1) * input.size(2), w = input.size(3);
    uint8_t* base = out.data_ptr<uint8_t>();
    for (int64_t i : idx)
      for (int64_t r = 0; r < rows; ++r) std::reverse(base + (i * rows + r) * w, base + (i * rows + r + 1) * w);
    return out;
  }
  auto out = input.clone();
  auto sel = torch::tensor(idx, torch::kInt64);
  out.index_copy_(0, sel, functional::hflip(input.index_select(0, sel)));
  return out;
}

at::Tensor RandomHorizontalFlip::operator()(const at::Tensor& input) const {
  return forward(input, generator_or_default(generator_));
}

at::Tensor RandomHorizontalFlip::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, get_params(gen, input.dim() == 4 ? input.size(0) : 1, p_));
}

std::string RandomHorizontalFlip::repr() const { return fmt::format("RandomHorizontalFlip(p={})", p_); }

}  // namespace birdplane::transforms
