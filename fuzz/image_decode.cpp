// libFuzzer target: the untrusted-image decoders (JPEG, PNG, WebP, GIF, BMP, PNM) that `predict` and
// image folders use. On any bytes, decode_image and read_image_header must either succeed with a
// consistent result or throw birdplane::Error; a crash, a sanitizer report, a leak or another
// exception is a bug. Torch-free: built from src/data/decode/ alone.
#include <cstddef>
#include <cstdint>

#include "birdplane/check.h"
#include "birdplane/data/image_decode.h"

namespace {

// Small enough that an input declaring a huge image is refused quickly instead of allocating
// (the limit itself is what the decoders must honour before allocating).
constexpr int64_t kMaxPixels = int64_t{1} << 22;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace birdplane::data;
  bool decoded = false;
  DecodedImage image;
  try {
    image = decode_image(data, size, "fuzz-input", kMaxPixels);
    decoded = true;
  } catch (const birdplane::Error&) {
  }
  if (decoded) {
    // What decode_image promises: a positive size within the limit and width * height * 3 bytes.
    if (image.width <= 0 || image.height <= 0) __builtin_trap();
    if (int64_t{image.width} * image.height > kMaxPixels) __builtin_trap();
    if (image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) __builtin_trap();
    if (image.format != sniff_image_format(data, size)) __builtin_trap();
    if (image.channels_in_file < 1 || image.channels_in_file > 4) __builtin_trap();
  }
  try {
    const ImageHeader header = read_image_header(data, size, "fuzz-input", kMaxPixels);
    if (header.width <= 0 || header.height <= 0) __builtin_trap();
    if (int64_t{header.width} * header.height > kMaxPixels) __builtin_trap();
  } catch (const birdplane::Error&) {
  }
  return 0;
}
