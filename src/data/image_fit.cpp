// Bringing a decoded image to the size a model takes: torchvision's Resize, and Resize + CenterCrop.
#include <ATen/ATen.h>

#include "birdplane/check.h"
#include "birdplane/data/image_io.h"
#include "birdplane/transforms/geometry.h"
#include "common/names.h"
#include "common/text.h"

namespace birdplane::data {

std::string to_string(CropMode mode) { return mode == CropMode::kCenter ? "center" : "none"; }

CropMode parse_crop_mode(const std::string& text) { return parse_named(kCropModes, to_lower(text), "crop"); }

at::Tensor fit_image(const at::Tensor& image_u8, int64_t height, int64_t width, CropMode crop) {
  BIRDPLANE_CHECK(image_u8.defined() && image_u8.dim() == 3 && image_u8.scalar_type() == at::kByte,
                  "fit_image needs a uint8 image [C,H,W]");
  BIRDPLANE_CHECK(height >= 1 && width >= 1, "fit_image: the size must be at least 1x1, got {}x{}", height, width);
  const int64_t h = image_u8.size(1), w = image_u8.size(2);
  if (h == height && w == width) return image_u8.clone();
  if (crop == CropMode::kNone) return resize_bilinear(image_u8, static_cast<int>(height), static_cast<int>(width));
  // Scale so the image covers the target: the side with the larger ratio fits exactly, the other is
  // floor(length * scale), which is what torchvision's int(size * long / short) gives for integers.
  int64_t new_h = height, new_w = width;
  if (height * w >= width * h) {
    new_w = std::max(width, height * w / h);
  } else {
    new_h = std::max(height, width * h / w);
  }
  at::Tensor scaled = (new_h == h && new_w == w) ? image_u8
                                                 : resize_bilinear(image_u8, static_cast<int>(new_h), static_cast<int>(new_w));
  return transforms::functional::center_crop(scaled, {height, width}).contiguous();
}

}  // namespace birdplane::data
