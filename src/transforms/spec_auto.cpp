// Spec entries for the auto transforms.
#include "spec_registry.h"

namespace birdplane::transforms::spec {

void add_auto_specs(Registry& r) { (void)r; }

}  // namespace birdplane::transforms::spec
