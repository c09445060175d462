#include "birdplane/version.h"

namespace birdplane {

std::string version() { return BIRDPLANE_VERSION_STRING; }

}  // namespace birdplane
