// The image decoders' front (image_decode.h): format names, the format sniffed from the first bytes,
// and decode_image / read_image_header, which check the limit and hand the bytes to that format's
// reader (jpeg.cpp, png.cpp, webp.cpp, gif.cpp, bmp.cpp, pnm.cpp).
#include "birdplane/data/image_decode.h"

#include <cstring>

#include "birdplane/check.h"
#include "data/decode/decoders.h"

namespace birdplane::data {
using namespace decode;  // the readers and what they share
namespace {

void check_max_pixels(int64_t max_pixels) {
  BIRDPLANE_CHECK_SETTING(max_pixels >= 1, "max_pixels", "must be at least 1, got {}", max_pixels);
}

Source make_source(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0 || data == nullptr) fail("cannot read image {}: the file is empty", name);
  const ImageFormat format = sniff_image_format(data, size);
  if (format == ImageFormat::kUnknown)
    fail("cannot read image {}: the file is not an image birdplane can read (JPEG, PNG, WebP, GIF, BMP, "
         "PPM/PGM/PBM expected)",
         name);
  return Source{data, size, name, format};
}

}  // namespace

const char* to_string(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kPnm: return "PNM";
    case ImageFormat::kUnknown: break;
  }
  return "unknown";
}

ImageFormat sniff_image_format(const uint8_t* data, size_t size) {
  if (data == nullptr) return ImageFormat::kUnknown;
  auto starts = [&](const char* magic, size_t n) { return size >= n && std::memcmp(data, magic, n) == 0; };
  if (starts("\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts("\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (size >= 12 && starts("RIFF", 4) && std::memcmp(data + 8, "WEBP", 4) == 0) return ImageFormat::kWebp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::kGif;
  if (starts("BM", 2)) return ImageFormat::kBmp;
  if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && pnm_space(data[2])) return ImageFormat::kPnm;
  return ImageFormat::kUnknown;
}

DecodedImage decode_image(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  check_max_pixels(max_pixels);
  const Source src = make_source(data, size, name);
  switch (src.format) {
    case ImageFormat::kJpeg: return decode_jpeg(src, max_pixels);
    case ImageFormat::kPng: return decode_png(src, max_pixels);
    case ImageFormat::kWebp: return decode_webp(src, max_pixels);
    case ImageFormat::kGif: return decode_gif(src, max_pixels);
    case ImageFormat::kBmp: return decode_bmp(src, max_pixels);
    case ImageFormat::kPnm: return decode_pnm(src, max_pixels);
    case ImageFormat::kUnknown: break;
  }
  throw InternalError("decode_image: unhandled format");
}

ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  check_max_pixels(max_pixels);
  const Source src = make_source(data, size, name);
  switch (src.format) {
    case ImageFormat::kJpeg: return jpeg_header(src, max_pixels);
    case ImageFormat::kPng: return png_header(src, max_pixels);
    case ImageFormat::kWebp: return webp_header(src, max_pixels);
    case ImageFormat::kGif: return gif_header(src, max_pixels);
    case ImageFormat::kBmp: return bmp_header(src, max_pixels);
    case ImageFormat::kPnm: return pnm_header(src, max_pixels);
    case ImageFormat::kUnknown: break;
  }
  throw InternalError("read_image_header: unhandled format");
}

}  // namespace birdplane::data
