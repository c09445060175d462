// Bringing a decoded image to the size a model takes: torchvision's Resize, and Resize + CenterCrop.
#include "data/image_fit.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>

#include "birdplane/check.h"
#include "birdplane/transforms/geometry.h"
#include "common/parse_named.h"
#include "common/text.h"
#include "data/resize_kernels.h"
#include "transforms/internal.h"

namespace birdplane::data {
namespace {

// The size an image of h x w is scaled to before the crop: kNone, the target itself; kCenter, the
// size that keeps the aspect ratio and covers the target (the side with the larger ratio fits
// exactly, the other is floor(length * scale), which is what torchvision's int(size * long / short)
// gives for integers).
std::pair<int64_t, int64_t> scaled_size(int64_t h, int64_t w, int64_t height, int64_t width, CropMode crop) {
  if (crop == CropMode::kNone) return {height, width};
  if (height * w >= width * h) return {height, std::max(width, height * w / h)};
  return {std::max(height, width * h / w), width};
}

// torchvision's CenterCrop offset: round((size - crop) / 2), Python's round (half to even).
int64_t center_offset(int64_t size, int64_t crop) {
  return transforms::functional::round_half_even(static_cast<double>(size - crop) / 2.0);
}

// fit_image with ATen's ops alone: images that are not RGB, and machines where the resize kernel
// differs from ATen. The image is not of the target size already.
at::Tensor fit_with_aten(const at::Tensor& image_u8, int64_t height, int64_t width, CropMode crop) {
  const int64_t h = image_u8.size(1), w = image_u8.size(2);
  const auto [new_h, new_w] = scaled_size(h, w, height, width, crop);
  at::Tensor scaled = (new_h == h && new_w == w) ? image_u8
                                                 : resize_bilinear(image_u8, static_cast<int>(new_h), static_cast<int>(new_w));
  if (crop == CropMode::kNone) return scaled;
  return transforms::functional::center_crop(scaled, {height, width}).contiguous();
}

}  // namespace

std::string to_string(CropMode mode) { return mode == CropMode::kCenter ? "center" : "none"; }

CropMode parse_crop_mode(const std::string& text) { return parse_named(kCropModes, to_lower(text), "crop"); }

at::Tensor fit_image(const at::Tensor& image_u8, int64_t height, int64_t width, CropMode crop) {
  BIRDPLANE_CHECK(image_u8.defined() && image_u8.dim() == 3 && image_u8.scalar_type() == at::kByte,
                  "fit_image needs a uint8 image [C,H,W]");
  BIRDPLANE_CHECK(height >= 1 && width >= 1, "fit_image: the size must be at least 1x1, got {}x{}", height, width);
  const int64_t h = image_u8.size(1), w = image_u8.size(2);
  if (h == height && w == width) return image_u8.clone();
  if (image_u8.size(0) != 3 || !kernels::resize_available()) return fit_with_aten(image_u8, height, width, crop);
  const at::Tensor hwc = image_u8.permute({1, 2, 0}).contiguous();
  at::Tensor out = at::empty({3, height, width}, at::kByte);
  fit_rgb(hwc.data_ptr<uint8_t>(), h, w, height, width, crop, out.data_ptr<uint8_t>());
  return out;
}

void fit_rgb(const uint8_t* hwc, int64_t h, int64_t w, int64_t height, int64_t width, CropMode crop, uint8_t* out_chw) {
  BIRDPLANE_CHECK(h >= 1 && w >= 1 && height >= 1 && width >= 1, "fit_rgb: sizes must be at least 1, got {}x{} to {}x{}",
                  h, w, height, width);
  const auto [new_h, new_w] = scaled_size(h, w, height, width, crop);
  const bool resize = new_h != h || new_w != w;
  if (resize && !kernels::resize_available()) {
    // ATen's path (another LibTorch or CPU): the same pixels, slower.
    const at::Tensor chw = at::from_blob(const_cast<uint8_t*>(hwc), {h, w, 3}, at::kByte).permute({2, 0, 1});
    at::from_blob(out_chw, {3, height, width}, at::kByte).copy_(fit_with_aten(chw.contiguous(), height, width, crop));
    return;
  }
  // The scaled image, CHW: resized, or the decoder's pixels reordered.
  thread_local std::vector<uint8_t> scaled;
  const bool direct = new_h == height && new_w == width;
  uint8_t* chw = out_chw;
  if (!direct) {
    scaled.resize(static_cast<size_t>(3 * new_h * new_w));
    chw = scaled.data();
  }
  if (resize) {
    kernels::resize_rgb(hwc, h, w, chw, new_h, new_w);
  } else {
    const int64_t plane = h * w;
    for (int64_t i = 0; i < plane; ++i)
      for (int64_t c = 0; c < 3; ++c) chw[c * plane + i] = hwc[i * 3 + c];
  }
  if (direct) return;
  const int64_t top = center_offset(new_h, height), left = center_offset(new_w, width);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < height; ++y)
      std::copy_n(chw + (c * new_h + top + y) * new_w + left, width, out_chw + (c * height + y) * width);
}

}  // namespace birdplane::data
