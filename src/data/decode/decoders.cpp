// The pieces every image reader shares that are not inline in decoders.h: the pixel-limit check on
// the declared size and the output image.
#include "data/decode/decoders.h"

#include <climits>

namespace birdplane::data::decode {

void check_size(const Source& src, int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0)
    fail_image(src, "it declares an empty image of {}x{} pixels ({})", width, height, to_string(src.format));
  if (height > max_pixels || width > max_pixels / height)
    fail_image(src, "it declares {}x{} pixels, above the limit of {}", width, height, max_pixels);
  if (width > INT_MAX || height > INT_MAX)
    fail_image(src, "it declares {}x{} pixels; birdplane reads at most {} pixels a side", width, height, INT_MAX);
}

DecodedImage new_image(const Source& src, int64_t width, int64_t height, int channels) {
  DecodedImage out;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  out.channels_in_file = channels;
  out.format = src.format;
  out.pixels.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  return out;
}

}  // namespace birdplane::data::decode
