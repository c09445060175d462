// Spec entries for the color / photometric transforms (color.h), RandomErasing and
// ConvertImageDtype (convert_erase_linear.h), the random containers RandomApply / RandomChoice /
// RandomOrder, and the general ToTensor / Normalize (transforms.h). Names and keywords are torchvision's.
#include <cmath>

#include <fmt/format.h>
#include <torch/types.h>

#include "birdplane/check.h"
#include "birdplane/transforms/color.h"
#include "birdplane/transforms/convert_erase_linear.h"
#include "spec_registry.h"

namespace birdplane::transforms::spec {
namespace {

// A number x or a pair [min, max] (ColorJitter's options).
JitterRange jitter(Args& a, size_t index, const std::string& key) {
  auto v = a.numbers(index, key, std::vector<double>{0});
  if (v.size() == 1) return JitterRange(v[0]);
  if (v.size() == 2) return JitterRange(v[0], v[1]);
  a.error(fmt::format("{} must be one number or a pair [min, max]; got {} values", key, v.size()));
}

// A pair of numbers (or one number for both), e.g. GaussianBlur's kernel_size and sigma.
std::array<double, 2> pair(Args& a, size_t index, const std::string& key, std::optional<std::vector<double>> fallback) {
  auto v = a.numbers(index, key, std::move(fallback));
  if (v.size() == 1) return {v[0], v[0]};
  if (v.size() == 2) return {v[0], v[1]};
  a.error(fmt::format("{} must be one number or a pair; got {} values", key, v.size()));
}

}  // namespace

void add_color_specs(Registry& r) {
  r.push_back({"Grayscale", "Grayscale(num_output_channels=1)", [](Args& a) -> TransformPtr {
                 const auto n = a.whole(0, "num_output_channels", 1, 1);
                 if (n != 1 && n != 3) a.error(fmt::format("num_output_channels is {}; allowed: 1 or 3", n));
                 return std::make_shared<Grayscale>(n);
               }});
  r.push_back({"RandomGrayscale", "RandomGrayscale(p=0.1)", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomGrayscale>(a.probability(0, "p", 0.1));
               }});
  r.push_back({"ColorJitter", "ColorJitter(brightness=0, contrast=0, saturation=0, hue=0); x means [max(0, 1-x), 1+x]",
               [](Args& a) -> TransformPtr {
                 auto b = jitter(a, 0, "brightness"), c = jitter(a, 1, "contrast"), s = jitter(a, 2, "saturation"),
                      h = jitter(a, 3, "hue");
                 return make_checked(a, [&] { return std::make_shared<ColorJitter>(b, c, s, h); });
               }});
  r.push_back({"GaussianBlur", "GaussianBlur(kernel_size, sigma=(0.1, 2.0))", [](Args& a) -> TransformPtr {
                 const auto k = pair(a, 0, "kernel_size", std::nullopt);
                 for (double v : k)
                   if (v != std::floor(v) || v <= 0 || std::fmod(v, 2) == 0)
                     a.error(fmt::format("kernel_size {} must be odd and positive", v));
                 const auto s = pair(a, 1, "sigma", std::vector<double>{0.1, 2.0});
                 if (!(s[0] > 0 && s[0] <= s[1]))
                   a.error(fmt::format("sigma ({}, {}) must be positive and of the form (min, max)", s[0], s[1]));
                 return std::make_shared<GaussianBlur>(
                     std::array<int64_t, 2>{static_cast<int64_t>(k[0]), static_cast<int64_t>(k[1])}, s);
               }});
  r.push_back({"RandomInvert", "RandomInvert(p=0.5)", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomInvert>(a.probability(0, "p", 0.5));
               }});
  r.push_back({"RandomPosterize", "RandomPosterize(bits, p=0.5); bits 0 to 8", [](Args& a) -> TransformPtr {
                 const auto bits = a.whole(0, "bits", std::nullopt, 0);
                 if (bits > 8) a.error(fmt::format("bits is {}; allowed: 0 to 8", bits));
                 return std::make_shared<RandomPosterize>(bits, a.probability(1, "p", 0.5));
               }});
  r.push_back({"RandomSolarize", "RandomSolarize(threshold, p=0.5); threshold up to 255 for uint8",
               [](Args& a) -> TransformPtr {
                 const double t = a.number(0, "threshold");
                 return std::make_shared<RandomSolarize>(t, a.probability(1, "p", 0.5));
               }});
  r.push_back({"RandomAdjustSharpness", "RandomAdjustSharpness(sharpness_factor, p=0.5)", [](Args& a) -> TransformPtr {
                 const double f = a.number(0, "sharpness_factor");
                 if (f < 0) a.error(fmt::format("sharpness_factor is {}; it must be 0 or more", f));
                 return std::make_shared<RandomAdjustSharpness>(f, a.probability(1, "p", 0.5));
               }});
  r.push_back({"RandomAutocontrast", "RandomAutocontrast(p=0.5)", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomAutocontrast>(a.probability(0, "p", 0.5));
               }});
  r.push_back({"RandomEqualize", "RandomEqualize(p=0.5)", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomEqualize>(a.probability(0, "p", 0.5));
               }});
  r.push_back({"RandomErasing",
               "RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0 | [r, g, b] | random, inplace=False)",
               [](Args& a) -> TransformPtr {
                 const double p = a.probability(0, "p", 0.5);
                 const auto scale = pair(a, 1, "scale", std::vector<double>{0.02, 0.33});
                 const auto ratio = pair(a, 2, "ratio", std::vector<double>{0.3, 3.3});
                 std::vector<double> value{0};
                 bool random = false;
                 if (a.has(3, "value")) {
                   // A number, a list of numbers, or the word random: Args cannot peek at the kind, so
                   // try numbers first and read the word when that fails.
                   try {
                     value = a.numbers(3, "value");
                   } catch (const Error&) {
                     const auto word = a.text(3, "value");
                     if (word != "random") a.error(fmt::format("value is '{}'; allowed: a number, a list, or random", word));
                     value.clear();
                     random = true;
                   }
                 }
                 const bool inplace = a.flag(4, "inplace", false);
                 return make_checked(a, [&] { return std::make_shared<RandomErasing>(p, scale, ratio, value, random, inplace); });
               }});
  r.push_back({"RandomApply", "RandomApply([transforms...], p=0.5)", [](Args& a) -> TransformPtr {
                 auto ts = a.transforms(0, "transforms");
                 return std::make_shared<RandomApply>(std::move(ts), a.probability(1, "p", 0.5));
               }});
  r.push_back({"RandomChoice", "RandomChoice([transforms...], p=None); p = one weight per transform",
               [](Args& a) -> TransformPtr {
                 auto ts = a.transforms(0, "transforms");
                 std::vector<double> p;
                 if (a.has(1, "p")) {
                   bool none = false;
                   try {
                     p = a.numbers(1, "p");
                   } catch (const Error&) {
                     if (a.text(1, "p") != "None") a.error("p must be None or a list of weights, one per transform");
                     none = true;
                   }
                   if (!none && p.size() != ts.size())
                     a.error(fmt::format("p has {} weights for {} transforms; give one each", p.size(), ts.size()));
                 }
                 return make_checked(a, [&] { return std::make_shared<RandomChoice>(ts, p); });
               }});
  r.push_back({"RandomOrder", "RandomOrder([transforms...])", [](Args& a) -> TransformPtr {
                 return std::make_shared<RandomOrder>(a.transforms(0, "transforms"));
               }});
  r.push_back({"ConvertImageDtype", "ConvertImageDtype(dtype); dtype float32 or uint8", [](Args& a) -> TransformPtr {
                 const auto d = a.choice(0, "dtype", {"float32", "float", "uint8"});
                 return std::make_shared<ConvertImageDtype>(d == "uint8" ? torch::kByte : torch::kFloat);
               }});
  r.push_back({"ToTensor", "ToTensor()", [](Args&) -> TransformPtr { return std::make_shared<ToTensor>(); }});
  r.push_back({"Normalize", "Normalize(mean, std, inplace=False)", [](Args& a) -> TransformPtr {
                 auto mean = a.numbers(0, "mean");
                 auto std = a.numbers(1, "std");
                 const bool inplace = a.flag(2, "inplace", false);
                 return make_checked(a, [&] { return std::make_shared<Normalize>(mean, std, inplace); });
               }});
}

}  // namespace birdplane::transforms::spec
