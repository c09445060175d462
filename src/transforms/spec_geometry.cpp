// Spec entries for the geometric transforms (geometry.h, warp.h). Positional order and keyword names
// follow torchvision's constructors. FiveCrop and TenCrop are left out: they turn a batch into a
// batch of crops, which no spec pipeline can pass on.
#include <cmath>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/warp.h"
#include "spec_registry.h"

namespace birdplane::transforms::spec {
namespace {

namespace F = functional;

// One whole number or a list of them, each >= `min`.
std::vector<int64_t> wholes(Args& a, size_t index, const std::string& key, std::optional<std::vector<double>> fallback,
                            int64_t min) {
  std::vector<int64_t> out;
  for (double v : a.numbers(index, key, std::move(fallback))) {
    if (v != std::floor(v) || v < static_cast<double>(min) || v > 1e9)
      a.error(fmt::format("{} must hold whole numbers, {} or more; got {}", key, min, v));
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

std::vector<int64_t> size_arg(Args& a, size_t index, const std::string& key = "size") {
  auto s = wholes(a, index, key, std::nullopt, 1);
  if (s.size() != 1 && s.size() != 2) a.error(fmt::format("{} must be one number or [h, w]", key));
  return s;
}

F::InterpolationMode interpolation_arg(Args& a, size_t index, const std::string& fallback) {
  return F::interpolation_from_string(a.choice(index, "interpolation", {"nearest", "bilinear", "bicubic"}, fallback));
}

F::PaddingMode padding_mode_arg(Args& a, size_t index) {
  return F::padding_mode_from_string(
      a.choice(index, "padding_mode", {"constant", "edge", "reflect", "symmetric"}, std::string("constant")));
}

double byte_fill(Args& a, size_t index) {
  const double fill = a.number(index, "fill", 0);
  if (fill < 0 || fill > 255) a.error(fmt::format("fill must be a byte value 0 to 255; got {}", fill));
  return fill;
}

std::optional<std::array<double, 2>> center_arg(Args& a, size_t index) {
  if (!a.has(index, "center")) return std::nullopt;
  auto c = a.numbers(index, "center");
  if (c.size() != 2) a.error("center must be [x, y]");
  return std::array<double, 2>{c[0], c[1]};
}

std::array<double, 2> range_arg(Args& a, size_t index, const std::string& key, std::array<double, 2> fallback) {
  auto v = a.numbers(index, key, std::vector<double>{fallback[0], fallback[1]});
  if (v.size() != 2) a.error(fmt::format("{} must be (min, max)", key));
  return {v[0], v[1]};
}

std::optional<bool> antialias_arg(Args& a, size_t index) {
  if (!a.has(index, "antialias")) return std::nullopt;
  return a.flag(index, "antialias", false);
}

}  // namespace

void add_geometry_specs(Registry& r) {
  auto random_crop = [](Args& a, bool alias) -> TransformPtr {
    auto size = alias && !a.has(0, "size") ? std::vector<int64_t>{32} : size_arg(a, 0);
    RandomCropOptions o(size);
    if (alias || a.has(1, "padding")) o.padding(wholes(a, 1, "padding", std::vector<double>{4}, 0));
    o.pad_if_needed(a.flag(2, "pad_if_needed", false));
    o.fill(byte_fill(a, 3));
    o.padding_mode(padding_mode_arg(a, 4));
    return make_checked(a, [&] { return std::make_shared<RandomCrop>(o); });
  };
  r.push_back({"RandomCrop", "RandomCrop(size, padding=None, pad_if_needed=False, fill=0, padding_mode=constant)",
               [=](Args& a) { return random_crop(a, false); }});
  r.push_back({"crop", "crop = RandomCrop(32, padding=4)", [=](Args& a) { return random_crop(a, true); }});
  auto flip = [](Args& a) -> TransformPtr { return std::make_shared<RandomHorizontalFlip>(a.probability(0, "p", 0.5)); };
  r.push_back({"RandomHorizontalFlip", "RandomHorizontalFlip(p=0.5)", flip});
  r.push_back({"flip", "flip = RandomHorizontalFlip(0.5)", flip});
  r.push_back({"RandomVerticalFlip", "RandomVerticalFlip(p=0.5)", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomVerticalFlip>(a.probability(0, "p", 0.5));
               }});
  r.push_back({"Resize", "Resize(size, interpolation=bilinear, max_size=None, antialias=None)",
               [](Args& a) -> TransformPtr {
                 auto size = size_arg(a, 0);
                 auto mode = interpolation_arg(a, 1, "bilinear");
                 std::optional<int64_t> max_size;
                 if (a.has(2, "max_size")) max_size = a.whole(2, "max_size", std::nullopt, 1);
                 auto antialias = antialias_arg(a, 3);
                 return make_checked(a, [&] { return std::make_shared<Resize>(size, mode, max_size, antialias); });
               }});
  r.push_back({"CenterCrop", "CenterCrop(size)", [](Args& a) -> TransformPtr {
                 auto size = size_arg(a, 0);
                 return make_checked(a, [&] { return std::make_shared<CenterCrop>(size); });
               }});
  r.push_back({"Pad", "Pad(padding, fill=0, padding_mode=constant)", [](Args& a) -> TransformPtr {
                 auto padding = wholes(a, 0, "padding", std::nullopt, 0);
                 const double fill = byte_fill(a, 1);
                 auto mode = padding_mode_arg(a, 2);
                 return make_checked(a, [&] { return std::make_shared<Pad>(padding, fill, mode); });
               }});
  r.push_back({"RandomResizedCrop",
               "RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(0.75, 1.3333), interpolation=bilinear, "
               "antialias=None)",
               [](Args& a) -> TransformPtr {
                 auto size = size_arg(a, 0);
                 auto scale = range_arg(a, 1, "scale", {0.08, 1.0});
                 auto ratio = range_arg(a, 2, "ratio", {3.0 / 4.0, 4.0 / 3.0});
                 auto mode = interpolation_arg(a, 3, "bilinear");
                 auto antialias = antialias_arg(a, 4);
                 return make_checked(a, [&] {
                   return std::make_shared<RandomResizedCrop>(size, scale, ratio, mode, antialias);
                 });
               }});
  r.push_back({"RandomRotation", "RandomRotation(degrees, interpolation=nearest, expand=False, center=None, fill=0)",
               [](Args& a) -> TransformPtr {
                 auto degrees = a.numbers(0, "degrees");
                 auto mode = interpolation_arg(a, 1, "nearest");
                 const bool expand = a.flag(2, "expand", false);
                 auto center = center_arg(a, 3);
                 auto fill = a.numbers(4, "fill", std::vector<double>{0});
                 return make_checked(a, [&] { return std::make_shared<RandomRotation>(degrees, mode, expand, center, fill); });
               }});
  r.push_back({"RandomAffine",
               "RandomAffine(degrees, translate=None, scale=None, shear=None, interpolation=nearest, fill=0, "
               "center=None)",
               [](Args& a) -> TransformPtr {
                 auto degrees = a.numbers(0, "degrees");
                 auto translate = a.numbers(1, "translate", std::vector<double>{});
                 auto scale = a.numbers(2, "scale", std::vector<double>{});
                 auto shear = a.numbers(3, "shear", std::vector<double>{});
                 auto mode = interpolation_arg(a, 4, "nearest");
                 auto fill = a.numbers(5, "fill", std::vector<double>{0});
                 auto center = center_arg(a, 6);
                 return make_checked(a, [&] {
                   return std::make_shared<RandomAffine>(degrees, translate, scale, shear, mode, fill, center);
                 });
               }});
  r.push_back({"RandomPerspective", "RandomPerspective(distortion_scale=0.5, p=0.5, interpolation=bilinear, fill=0)",
               [](Args& a) -> TransformPtr {
                 const double distortion = a.number(0, "distortion_scale", 0.5);
                 const double p = a.probability(1, "p", 0.5);
                 auto mode = interpolation_arg(a, 2, "bilinear");
                 auto fill = a.numbers(3, "fill", std::vector<double>{0});
                 return make_checked(a, [&] { return std::make_shared<RandomPerspective>(distortion, p, mode, fill); });
               }});
  r.push_back({"ElasticTransform", "ElasticTransform(alpha=50.0, sigma=5.0, interpolation=bilinear, fill=0)",
               [](Args& a) -> TransformPtr {
                 auto alpha = a.numbers(0, "alpha", std::vector<double>{50.0});
                 auto sigma = a.numbers(1, "sigma", std::vector<double>{5.0});
                 auto mode = interpolation_arg(a, 2, "bilinear");
                 const double fill = a.number(3, "fill", 0);
                 return make_checked(a, [&] { return std::make_shared<ElasticTransform>(alpha, sigma, mode, fill); });
               }});
}

}  // namespace birdplane::transforms::spec
