// Spec entries for the color transforms.
#include "spec_registry.h"

namespace birdplane::transforms::spec {

void add_color_specs(Registry& r) { (void)r; }

}  // namespace birdplane::transforms::spec
