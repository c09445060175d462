// PNG (libpng). Transforms give PIL's convert("RGB"): palettes expanded (by our own table, so that
// indices past the palette read as PIL reads them), 1/2/4-bit gray scaled to 0..255, 16-bit
// samples cut to their high byte (PIL's "RGB;16B", "LA;16B", "RGBA;16B"), alpha and tRNS dropped
// without blending, gAMA/iCCP/sBIT ignored. 16-bit gray is PIL's mode "I" ("I;16B"), whose
// conversion to RGB clips: a sample v gives min(v, 255), not v >> 8 (so most 16-bit gray images
// come out nearly white, in PIL and here alike). A checksum error is an error in every chunk: PIL
// checks the chunks before the pixels too (libpng alone would only warn about ancillary ones), and
// a damaged IDAT or IEND checksum, which PIL lets pass, is refused here. So is a missing IEND or a
// zlib stream that ends before the last row (PIL pads such a file with black).
#include "data/decode/decoders.h"

#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <png.h>

namespace birdplane::data::decode {
namespace {

uint32_t crc32_of(const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

struct PngIhdr {
  uint32_t width, height;
  int depth, color, interlace;
};

// The IHDR chunk, read and checked by hand so that the size is known before libpng runs.
PngIhdr parse_png_ihdr(const Source& src) {
  if (src.size < 33) fail_truncated(src);
  const uint8_t* c = src.data + 8;
  if (u32be(c) != 13 || std::memcmp(c + 4, "IHDR", 4) != 0)
    fail_damaged(src, "the first chunk is not a 13-byte IHDR");
  if (crc32_of(c + 4, 17) != u32be(c + 21)) fail_damaged(src, "the IHDR checksum does not match");
  PngIhdr h{u32be(c + 8), u32be(c + 12), c[16], c[17], c[20]};
  bool valid_depth = false;
  switch (h.color) {
    case 0: valid_depth = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8 || h.depth == 16; break;
    case 3: valid_depth = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8; break;
    case 2: case 4: case 6: valid_depth = h.depth == 8 || h.depth == 16; break;
    default: fail_damaged(src, "unknown colour type {}", h.color);
  }
  if (!valid_depth) fail_damaged(src, "bit depth {} is not allowed with colour type {}", h.depth, h.color);
  if (c[18] != 0 || c[19] != 0 || h.interlace > 1)
    fail_damaged(src, "unknown compression, filter or interlace method ({}, {}, {})", c[18], c[19], h.interlace);
  if (h.width > 0x7FFFFFFFu || h.height > 0x7FFFFFFFu)
    fail_damaged(src, "a size above 2^31-1 ({}x{})", h.width, h.height);
  return h;
}

struct PngJob {
  const uint8_t* data;
  size_t size;
  size_t pos;
  png_structp png;
  png_infop info;
  bool truncated;
  char message[256];
};

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  PngJob* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (n > job->size - job->pos) {
    job->truncated = true;
    png_error(png, "the file ends early");
  }
  std::memcpy(out, job->data + job->pos, n);
  job->pos += n;
}

void png_on_error(png_structp png, png_const_charp message) {
  PngJob* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof job->message, "%s", message);
  png_longjmp(png, 1);
}

// Warnings are about data PIL ignores too (a bad iCCP profile, a palette index past the palette).
void png_on_warning(png_structp, png_const_charp) {}

// Phase 1: the chunks before the pixels.
bool png_read_chunks(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_set_read_fn(job->png, job, png_read_memory);
  png_set_user_limits(job->png, 0x7FFFFFFF, 0x7FFFFFFF);  // birdplane's own limit was checked
  png_set_crc_action(job->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_read_info(job->png, job->info);
  return true;
}

// Phase 2: transforms, then every row (all passes of an interlaced file) and the chunks after.
// `rows` point into the output, `row_bytes` is the room each has.
bool png_read_rows(PngJob* job, png_bytepp rows, size_t row_bytes) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_structp png = job->png;
  const int color = png_get_color_type(png, job->info);
  const int depth = png_get_bit_depth(png, job->info);
  switch (color) {
    case PNG_COLOR_TYPE_GRAY:
      if (depth <= 8) png_set_gray_to_rgb(png);  // also scales 1/2/4-bit gray to 0..255
      break;                                     // 16-bit gray stays raw: clipped below
    case PNG_COLOR_TYPE_PALETTE:
      if (depth < 8) png_set_packing(png);  // one index per byte, mapped below
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      if (depth == 16) png_set_strip_16(png);
      png_set_strip_alpha(png);
      png_set_gray_to_rgb(png);
      break;
    default:  // RGB, RGBA
      if (depth == 16) png_set_strip_16(png);
      png_set_strip_alpha(png);
      break;
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, job->info);
  if (png_get_rowbytes(png, job->info) > row_bytes) {
    std::snprintf(job->message, sizeof job->message, "unexpected row size");
    return false;
  }
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

struct PngDecoder {
  PngJob job{};
  explicit PngDecoder(const Source& src) : src_(src) {
    job.data = src.data;
    job.size = src.size;
    job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    if (job.png) job.info = png_create_info_struct(job.png);
  }
  ~PngDecoder() { png_destroy_read_struct(&job.png, job.info ? &job.info : nullptr, nullptr); }
  PngDecoder(const PngDecoder&) = delete;
  PngDecoder& operator=(const PngDecoder&) = delete;

  [[noreturn]] void fail_from_job() const {
    if (job.truncated) fail_truncated(src_);
    fail_damaged(src_, "{}", job.message);
  }

 private:
  const Source& src_;
};

}  // namespace

ImageHeader png_header(const Source& src, int64_t max_pixels) {
  const PngIhdr h = parse_png_ihdr(src);
  check_size(src, h.width, h.height, max_pixels);
  return {static_cast<int>(h.width), static_cast<int>(h.height), src.format};
}

DecodedImage decode_png(const Source& src, int64_t max_pixels) {
  const PngIhdr h = parse_png_ihdr(src);
  check_size(src, h.width, h.height, max_pixels);
  PngDecoder dec(src);
  if (!dec.job.png || !dec.job.info) fail_image(src, "libpng could not start (out of memory?)");
  if (!png_read_chunks(&dec.job)) dec.fail_from_job();
  png_structp png = dec.job.png;
  png_infop info = dec.job.info;
  if (png_get_image_width(png, info) != h.width || png_get_image_height(png, info) != h.height)
    fail_damaged(src, "libpng read another size than IHDR declares");

  int channels = 3;
  Palette palette;
  switch (h.color) {
    case PNG_COLOR_TYPE_GRAY: channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    case PNG_COLOR_TYPE_PALETTE: {
      png_colorp colors = nullptr;
      int count = 0;
      if (png_get_PLTE(png, info, &colors, &count) == 0 || count < 1 || count > 256)
        fail_damaged(src, "a palette image without a usable PLTE chunk");
      for (int i = 0; i < count; ++i) palette.set(i, colors[i].red, colors[i].green, colors[i].blue);
      channels = png_get_valid(png, info, PNG_INFO_tRNS) ? 4 : 3;
      break;
    }
    default: break;
  }

  DecodedImage out = new_image(src, h.width, h.height, channels);
  const size_t stride = static_cast<size_t>(out.width) * 3;
  std::vector<png_bytep> rows(static_cast<size_t>(out.height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = out.pixels.data() + y * stride;
  if (!png_read_rows(&dec.job, rows.data(), stride)) dec.fail_from_job();

  // Widen palette indices and 16-bit gray samples in place, right to left, so that no sample is
  // overwritten before it is read.
  const bool indexed = h.color == PNG_COLOR_TYPE_PALETTE;
  const bool gray16 = h.color == PNG_COLOR_TYPE_GRAY && h.depth == 16;
  if (indexed || gray16) {
    for (png_bytep row : rows) {
      for (int x = out.width - 1; x >= 0; --x) {
        uint8_t* px = row + 3 * static_cast<size_t>(x);
        if (indexed) {
          const uint8_t* rgb = palette.at(row[x]);
          px[0] = rgb[0], px[1] = rgb[1], px[2] = rgb[2];
        } else {
          const uint32_t v = u16be(row + 2 * static_cast<size_t>(x));
          px[0] = px[1] = px[2] = static_cast<uint8_t>(std::min<uint32_t>(v, 255));
        }
      }
    }
  }
  return out;
}

}  // namespace birdplane::data::decode
