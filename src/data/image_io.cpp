#include "birdplane/data/image_io.h"
#include "data/png_encode.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include <ATen/ATen.h>
#include <stb_image_write.h>

#include "birdplane/check.h"
#include "birdplane/data/image_decode.h"
#include "birdplane/transforms/geometry.h"
#include "common/files.h"
#include "data/font.h"

namespace fs = std::filesystem;

namespace birdplane::data {
namespace {

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  return fmt::format("{} {}", c10::toString(t.scalar_type()), c10::str(t.sizes()));
}

// Float images follow ToTensor's [0,1] convention; ToPILImage multiplies by 255 and truncates, we
// round instead so that a uint8 -> ToTensor -> write_png round trip is exact.
at::Tensor to_u8_chw(const at::Tensor& image, const std::string& path) {
  BIRDPLANE_CHECK(image.defined() && image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
                  "cannot write {}: expected an image tensor [3,H,W] or [1,H,W], got {}", path,
                  describe(image));
  BIRDPLANE_CHECK(image.size(1) > 0 && image.size(2) > 0, "cannot write {}: the image is empty ({})",
                  path, describe(image));
  at::Tensor cpu = image.cpu();
  if (cpu.scalar_type() == at::kByte) return cpu;
  BIRDPLANE_CHECK(at::isFloatingType(cpu.scalar_type()),
                  "cannot write {}: expected uint8 (0..255) or float (0..1) pixels, got {}", path,
                  describe(image));
  return at::nan_to_num(cpu.to(at::kFloat), 0.0, 1.0, 0.0).mul(255.0f).round().clamp(0, 255).to(at::kByte);
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::string*>(context);
  out->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

void check_u8_chw(const at::Tensor& image, const char* what) {
  BIRDPLANE_CHECK(image.defined() && image.dim() == 3 && image.scalar_type() == at::kByte,
                  "{} needs a uint8 image [C,H,W], got {}", what, describe(image));
}

}  // namespace

void write_png(const std::string& path, const at::Tensor& image) {
  const at::Tensor chw = to_u8_chw(image, path);
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  BIRDPLANE_CHECK(fs::is_directory(folder, ec), "cannot write {}: folder {} does not exist (create it first)",
                  path, folder.string());
  BIRDPLANE_CHECK(!fs::is_directory(target, ec), "cannot write {}: it is a folder", path);

  // Encode in memory first, so a failure to encode never creates a file.
  write_file_atomically(path, encode_png(chw, path));
}

std::string encode_png(const at::Tensor& image, const std::string& what) {
  const at::Tensor hwc = to_u8_chw(image, what).permute({1, 2, 0}).contiguous();
  const int height = static_cast<int>(hwc.size(0));
  const int width = static_cast<int>(hwc.size(1));
  const int channels = static_cast<int>(hwc.size(2));
  std::string bytes;
  const int ok = stbi_write_png_to_func(append_bytes, &bytes, width, height, channels, hwc.data_ptr<uint8_t>(),
                                        width * channels);
  BIRDPLANE_CHECK(ok != 0 && !bytes.empty(), "cannot write {}: PNG encoding failed for a {}x{} image", what,
                  width, height);
  return bytes;
}

LoadedImage read_image(const std::string& path, int64_t max_pixels) {
  DecodedImage decoded = decode_image_file(path, max_pixels);
  LoadedImage out;
  // The decoder gives HWC bytes; contiguous() after the permute makes the copy that outlives them.
  out.image = at::from_blob(decoded.pixels.data(), {decoded.height, decoded.width, 3}, at::kByte)
                  .permute({2, 0, 1})
                  .contiguous();
  out.original_width = decoded.width;
  out.original_height = decoded.height;
  out.original_channels = decoded.channels_in_file;
  return out;
}

at::Tensor resize_bilinear(const at::Tensor& image_u8, int height, int width) {
  check_u8_chw(image_u8, "resize_bilinear");
  BIRDPLANE_CHECK(height >= 1 && width >= 1, "resize_bilinear: the size must be at least 1x1, got {}x{}",
                  height, width);
  // functional::resize with antialias is torchvision's: float32, aten::_upsample_bilinear2d_aa, round,
  // cast back. The aa kernel is used in both directions: when enlarging it computes the same triangle
  // filter as upsample_bilinear2d, but sums in another order, so only it reproduces torchvision's
  // result at exact .5 ties. Its weights are normalized, so no value leaves 0..255.
  namespace F = transforms::functional;
  at::Tensor out = F::resize(image_u8, {height, width}, F::InterpolationMode::kBilinear, std::nullopt,
                             /*antialias=*/true);
  // resize hands back the input itself when the size already matches; callers get a new tensor.
  return out.is_same(image_u8) ? out.clone() : out;
}

at::Tensor upscale_nearest(const at::Tensor& image_u8, int factor) {
  BIRDPLANE_CHECK(image_u8.defined() && image_u8.dim() == 3, "upscale_nearest needs an image [C,H,W], got {}",
                  describe(image_u8));
  BIRDPLANE_CHECK(factor >= 1, "upscale_nearest: the factor must be at least 1, got {}", factor);
  if (factor == 1) return image_u8.clone();
  return image_u8.repeat_interleave(factor, 1).repeat_interleave(factor, 2);
}

int grid_text_scale(int scale) { return std::max(1, (scale + 1) / 3); }

at::Tensor make_grid(const at::Tensor& images_u8, int rows, int cols, int scale,
                     const std::vector<std::string>& captions, int padding) {
  BIRDPLANE_CHECK(images_u8.defined() && images_u8.dim() == 4 && images_u8.size(1) == 3 &&
                      images_u8.scalar_type() == at::kByte,
                  "make_grid needs uint8 images [N,3,H,W], got {}", describe(images_u8));
  BIRDPLANE_CHECK(rows >= 1 && cols >= 1, "make_grid: rows and cols must be at least 1, got {}x{}", rows, cols);
  BIRDPLANE_CHECK(scale >= 1, "make_grid: scale must be at least 1, got {}", scale);
  BIRDPLANE_CHECK(padding >= 0, "make_grid: padding must not be negative, got {}", padding);
  const int64_t n = images_u8.size(0);
  BIRDPLANE_CHECK(n <= static_cast<int64_t>(rows) * cols, "make_grid: {} images do not fit a {}x{} grid", n,
                  rows, cols);
  BIRDPLANE_CHECK(captions.empty() || static_cast<int64_t>(captions.size()) == n,
                  "make_grid: {} captions for {} images (give one per image, or none)", captions.size(), n);

  const int text_scale = grid_text_scale(scale);
  const int image_h = static_cast<int>(images_u8.size(2)) * scale;
  const int image_w = static_cast<int>(images_u8.size(3)) * scale;
  int widest = 0;
  for (const auto& c : captions) widest = std::max(widest, text_width(c, text_scale));
  const int band = captions.empty() ? 0 : 2 * text_scale + text_height(text_scale);
  const int cell_w = std::max(image_w, widest);
  const int cell_h = image_h + band;
  const int grid_w = cols * cell_w + (cols + 1) * padding;
  const int grid_h = rows * cell_h + (rows + 1) * padding;

  // White like matplotlib's figure background; captions in near-black.
  at::Tensor grid = at::full({3, grid_h, grid_w}, 255, images_u8.options().device(at::kCPU));
  const std::array<uint8_t, 3> ink = {20, 20, 20};
  const at::Tensor scaled = images_u8.cpu();
  for (int64_t i = 0; i < n; ++i) {
    const int r = static_cast<int>(i / cols);
    const int c = static_cast<int>(i % cols);
    const int x0 = padding + c * (cell_w + padding);
    const int y0 = padding + r * (cell_h + padding);
    const int ix = x0 + (cell_w - image_w) / 2;
    grid.slice(1, y0, y0 + image_h).slice(2, ix, ix + image_w).copy_(upscale_nearest(scaled[i], scale));
    if (!captions.empty()) {
      const int tx = x0 + (cell_w - text_width(captions[i], text_scale)) / 2;
      draw_text(grid, tx, y0 + image_h + text_scale, captions[i], ink, text_scale);
    }
  }
  return grid;
}

}  // namespace birdplane::data
