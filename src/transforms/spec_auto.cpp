// Spec entries for the automatic augmentation policies (autoaugment.h): AutoAugment, RandAugment,
// TrivialAugmentWide and AugMix, with torchvision's keywords and defaults. fill left out is
// torchvision's fill=None (zero padding); given, it is one number or one per channel.
#include <limits>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/transforms/autoaugment.h"
#include "spec_registry.h"

namespace birdplane::transforms::spec {
namespace {

namespace F = functional;

F::InterpolationMode interpolation_arg(Args& a, size_t index, const std::string& fallback) {
  // The grid warps take nearest and bilinear only on tensors, as in torchvision.
  return F::interpolation_from_string(a.choice(index, "interpolation", {"nearest", "bilinear"}, fallback));
}

std::vector<double> fill_arg(Args& a, size_t index) {
  if (!a.has(index, "fill")) return {};
  auto fill = a.numbers(index, "fill");
  if (fill.empty()) a.error("fill needs one number or one per channel");
  return fill;
}

}  // namespace

void add_auto_specs(Registry& r) {
  r.push_back({"AutoAugment", "AutoAugment(policy=IMAGENET, interpolation=nearest, fill=None); policy IMAGENET, "
                              "CIFAR10 or SVHN",
               [](Args& a) -> TransformPtr {
                 const auto policy = auto_augment_policy_from_string(
                     a.choice(0, "policy", {"IMAGENET", "CIFAR10", "SVHN"}, std::string("IMAGENET")));
                 const auto mode = interpolation_arg(a, 1, "nearest");
                 auto fill = fill_arg(a, 2);
                 return make_checked(a, [&] { return std::make_shared<AutoAugment>(policy, mode, fill); });
               }});
  r.push_back({"RandAugment",
               "RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31, interpolation=nearest, fill=None)",
               [](Args& a) -> TransformPtr {
                 const auto num_ops = a.whole(0, "num_ops", 2, 0);
                 const auto magnitude = a.whole(1, "magnitude", 9, 0);
                 const auto bins = a.whole(2, "num_magnitude_bins", 31, 2);
                 if (magnitude >= bins)
                   a.error(fmt::format("magnitude is {}; allowed: 0 to num_magnitude_bins - 1 = {}", magnitude,
                                       bins - 1));
                 const auto mode = interpolation_arg(a, 3, "nearest");
                 auto fill = fill_arg(a, 4);
                 return make_checked(a, [&] { return std::make_shared<RandAugment>(num_ops, magnitude, bins, mode, fill); });
               }});
  r.push_back({"TrivialAugmentWide", "TrivialAugmentWide(num_magnitude_bins=31, interpolation=nearest, fill=None)",
               [](Args& a) -> TransformPtr {
                 const auto bins = a.whole(0, "num_magnitude_bins", 31, 2);
                 const auto mode = interpolation_arg(a, 1, "nearest");
                 auto fill = fill_arg(a, 2);
                 return make_checked(a, [&] { return std::make_shared<TrivialAugmentWide>(bins, mode, fill); });
               }});
  r.push_back({"AugMix",
               "AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0, all_ops=True, "
               "interpolation=bilinear, fill=None); severity 1 to 10, chain_depth <= 0 means 1 to 3 at random",
               [](Args& a) -> TransformPtr {
                 const auto severity = a.whole(0, "severity", 3, 1);
                 if (severity > 10) a.error(fmt::format("severity is {}; allowed: 1 to 10", severity));
                 const auto width = a.whole(1, "mixture_width", 3, 1);
                 const auto depth = a.whole(2, "chain_depth", -1, -1000000000);
                 const double alpha = a.number(3, "alpha", 1.0);
                 if (!(alpha > 0)) a.error(fmt::format("alpha is {}; it must be a positive number", alpha));
                 const bool all_ops = a.flag(4, "all_ops", true);
                 const auto mode = interpolation_arg(a, 5, "bilinear");
                 auto fill = fill_arg(a, 6);
                 return make_checked(
                     a, [&] { return std::make_shared<AugMix>(severity, width, depth, alpha, all_ops, mode, fill); });
               }});
}

}  // namespace birdplane::transforms::spec
