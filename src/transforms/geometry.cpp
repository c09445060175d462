#include "birdplane/transforms/geometry.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::transforms {
namespace functional {

at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  BIRDPLANE_CHECK(image.dim() == 3 || image.dim() == 4, "crop expects [C,H,W] or [B,C,H,W], got {} dims",
                  image.dim());
  const int64_t h = image.size(-2), w = image.size(-1);
  BIRDPLANE_CHECK(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= h && left + width <= w,
                  "crop: the window top={} left={} height={} width={} does not fit a {}x{} image", top, left,
                  height, width, h, w);
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

namespace {

at::Generator& generator_or_default(at::Generator* g) {
  static thread_local at::Generator fallback = at::detail::getDefaultCPUGenerator();
  return g ? *g : fallback;
}

// torch.randint(low, high, (1,), generator=g).item(), as torchvision draws crop offsets.
int64_t randint(at::Generator& gen, int64_t high) {
  return torch::randint(0, high, {1}, gen, torch::kInt64).item<int64_t>();
}

}  // namespace

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
  for (int64_t i = 0; i < input.size(0); ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    out[i].copy_(functional::crop(padded[i], p.top, p.left, p.height, p.width));
  }
  return out;
}

at::Tensor RandomCrop::operator()(const at::Tensor& input) const {
  auto& gen = generator_or_default(generator_);
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
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = torch::rand({1}, gen).item<float>() < p;
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
  auto out = input.clone();
  auto sel = torch::tensor(idx, torch::kInt64);
  out.index_copy_(0, sel, functional::hflip(input.index_select(0, sel)));
  return out;
}

at::Tensor RandomHorizontalFlip::operator()(const at::Tensor& input) const {
  const int64_t n = input.dim() == 4 ? input.size(0) : 1;
  return apply(input, get_params(generator_or_default(generator_), n, p_));
}

std::string RandomHorizontalFlip::repr() const { return fmt::format("RandomHorizontalFlip(p={})", p_); }

}  // namespace birdplane::transforms
