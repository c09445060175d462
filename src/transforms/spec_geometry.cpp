// Spec entries for the geometric transforms (geometry.h).
#include <fmt/format.h>

#include "birdplane/transforms/geometry.h"
#include "spec_registry.h"

namespace birdplane::transforms::spec {

void add_geometry_specs(Registry& r) {
  auto random_crop = [](Args& a, bool alias) -> TransformPtr {
    const int64_t size = a.whole(0, "size", alias ? std::optional<int64_t>(32) : std::nullopt, 1);
    const int64_t padding = a.whole(1, "padding", alias ? 4 : 0, 0);
    const double fill = a.number(2, "fill", 0);
    if (fill < 0 || fill > 255) a.error(fmt::format("fill must be a byte value 0 to 255; got {}", fill));
    return std::make_shared<RandomCrop>(size, padding, fill);
  };
  r.push_back({"RandomCrop", "RandomCrop(size, padding=0, fill=0)", [=](Args& a) { return random_crop(a, false); }});
  r.push_back({"crop", "crop = RandomCrop(32, padding=4)", [=](Args& a) { return random_crop(a, true); }});
  auto flip = [](Args& a) -> TransformPtr { return std::make_shared<RandomHorizontalFlip>(a.probability(0, "p", 0.5)); };
  r.push_back({"RandomHorizontalFlip", "RandomHorizontalFlip(p=0.5)", flip});
  r.push_back({"flip", "flip = RandomHorizontalFlip(0.5)", flip});
}

}  // namespace birdplane::transforms::spec
