// How resampling transforms pick output pixel values (torchvision.transforms.InterpolationMode),
// limited to the modes torchvision 0.14 supports on tensors.
#pragma once

#include <string>

namespace birdplane::transforms::functional {

/// torchvision's InterpolationMode for tensors: NEAREST, BILINEAR, BICUBIC. Resize takes all three;
/// the grid transforms (affine, rotate, perspective, elastic) take nearest and bilinear only, as
/// torchvision's tensor path does.
enum class InterpolationMode { kNearest, kBilinear, kBicubic };

/// "nearest", "bilinear" or "bicubic" (torchvision's InterpolationMode.value).
std::string to_string(InterpolationMode mode);

/// The mode named by `name` (case-insensitive; an "InterpolationMode." prefix is ignored). Throws
/// Error naming the allowed words otherwise.
InterpolationMode interpolation_from_string(const std::string& name);

}  // namespace birdplane::transforms::functional
