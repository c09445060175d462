// Decoding image files from untrusted bytes: JPEG (libjpeg-turbo), PNG (libpng), WebP (libwebp), GIF
// (giflib, first frame), BMP and PPM/PGM/PBM (our own strict readers). Every decoder checks the
// declared dimensions against a pixel limit before allocating, treats a truncated file as an error, and
// produces RGB pixels equal to what PIL gives for Image.open(f).convert("RGB") (gray replicated, alpha
// dropped without blending, palettes expanded, 16-bit samples cut to their high byte as PIL does,
// except 16-bit gray PNG/PGM, which PIL 9.4 clips to 255). The reference is Debian 12's PIL 9.4
// (tools/write_test_images.py); variants PIL misreads, or that the libraries cannot read as PIL does,
// are refused with a message rather than decoded differently (see src/data/decode/).
// No LibTorch here, so the decoders build fast and fuzz cheaply; image_io.h wraps them in tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::data {

/// The file formats birdplane decodes, recognised by their first bytes (never by the extension).
enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kGif, kBmp, kPnm };

/// "JPEG", "PNG", "WebP", "GIF", "BMP", "PNM" or "unknown".
const char* to_string(ImageFormat format);

/// The format the first bytes announce; kUnknown when none matches (also for fewer bytes than a
/// signature needs).
ImageFormat sniff_image_format(const uint8_t* data, size_t size);

/// The default limit on width * height: 89,478,485 pixels (PIL's Image.MAX_IMAGE_PIXELS, about a
/// 9,459 x 9,459 image, 268 MB as RGB). Larger declared sizes are refused before any allocation, so
/// a small file that claims an enormous image (a decompression bomb) costs nothing.
inline constexpr int64_t kDefaultMaxPixels = 89'478'485;

/// Decoded pixels, row-major HWC RGB: pixels.size() == height * width * 3.
struct DecodedImage {
  std::vector<uint8_t> pixels;
  int width = 0;
  int height = 0;
  int channels_in_file = 0;  ///< 1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha (palette: 3, or 4
                             ///< with transparency; a CMYK JPEG: 4)
  ImageFormat format = ImageFormat::kUnknown;
};

/// Decodes an image held in memory. `name` is only used in messages (the file's path). Throws
/// birdplane::Error naming `name` and the reason when the bytes are not a supported image, are
/// truncated or damaged, or declare more than `max_pixels` pixels (or a zero size).
DecodedImage decode_image(const uint8_t* data, size_t size, const std::string& name,
                          int64_t max_pixels = kDefaultMaxPixels);

/// The width and height an image declares in its header, read without decoding the pixels (for
/// choosing a size before decoding a whole folder). Throws as decode_image does for bytes that are
/// not a supported image or declare a size above `max_pixels`.
struct ImageHeader {
  int width = 0;
  int height = 0;
  ImageFormat format = ImageFormat::kUnknown;
};
ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& name,
                              int64_t max_pixels = kDefaultMaxPixels);

/// Reads a whole file into memory, refusing files above `max_bytes` (default 1 GiB) and naming the
/// path when it is missing, a folder, not a regular file (a FIFO or a device: never opened for
/// waiting) or unreadable.
std::vector<uint8_t> read_file_bytes(const std::string& path, int64_t max_bytes = int64_t{1} << 30);

/// read_file_bytes + decode_image.
DecodedImage decode_image_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);

}  // namespace birdplane::data
