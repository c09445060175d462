// fit_image for a decoded RGB image still in the decoder's layout (private): the image folder calls it
// once per file, so it avoids ATen's per-call overhead where it can (data/resize_kernels.h).
#pragma once

#include <cstdint>

#include "birdplane/data/image_io.h"

namespace birdplane::data {

/// fit_image(image, height, width, crop) for an RGB image stored HWC (h x w x 3 bytes, packed),
/// written to out_chw as uint8 [3][height][width]. The same pixels as fit_image.
void fit_rgb(const uint8_t* hwc, int64_t h, int64_t w, int64_t height, int64_t width, CropMode crop, uint8_t* out_chw);

}  // namespace birdplane::data
