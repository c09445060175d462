// PNG encoding in memory (for pages that inline their images); data/image_io.h's write_png writes the
// same bytes to a file.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace birdplane::data {

/// The PNG file bytes of a uint8 image [C,H,W] (1 or 3 channels). Throws birdplane::Error naming `what`
/// for other shapes or types.
std::string encode_png(const at::Tensor& image, const std::string& what = "the image");

}  // namespace birdplane::data
