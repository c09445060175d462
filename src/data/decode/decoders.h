// Decoders for untrusted image files. Each reader checks the declared size against the pixel limit
// before allocating, treats a file that ends early as an error, and gives the pixels of Debian 12's
// PIL 9.4 for Image.open(f).convert("RGB"); tests/unit/data/image_decode_test.cpp compares every
// variant byte for byte with files and pixels written by tools/write_test_images.py. Where PIL reads a
// variant wrongly (BMP palettes it mistakes for gray ramps) or a library here cannot follow PIL,
// birdplane refuses the file with a message instead of returning other pixels.
//
// The C libraries report errors by longjmp (libjpeg, libpng) or return codes (giflib, libwebp). The
// functions that call setjmp hold only C structs and raw pointers, the callbacks that longjmp hold no
// C++ objects, and nothing throws through a C frame: each phase returns false and the C++ caller
// throws after the C library has unwound.
//
// This is the decoders' private header: what the per-format readers share (the source, the messages,
// the size check, byte access, PIL's palette) and each reader's two entry points, which dispatch.cpp
// calls for the format the first bytes announce.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/data/image_decode.h"

namespace birdplane::data::decode {

// What every reader gets: the bytes, the file name for messages and the sniffed format.
struct Source {
  const uint8_t* data;
  size_t size;
  const std::string& name;
  ImageFormat format;
};

template <typename... Args>
[[noreturn]] void fail_image(const Source& src, fmt::format_string<Args...> format, Args&&... args) {
  fail("cannot read image {}: {}", src.name, fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] inline void fail_truncated(const Source& src) {
  fail_image(src, "the file is truncated ({})", to_string(src.format));
}

template <typename... Args>
[[noreturn]] void fail_damaged(const Source& src, fmt::format_string<Args...> format, Args&&... args) {
  fail_image(src, "the file is damaged ({}: {})", to_string(src.format),
             fmt::format(format, std::forward<Args>(args)...));
}

// A valid file of a kind birdplane does not read (the detail starts with "a" or "an").
template <typename... Args>
[[noreturn]] void fail_unsupported(const Source& src, fmt::format_string<Args...> format, Args&&... args) {
  fail_image(src, "{} is not supported (convert the file to PNG)", fmt::format(format, std::forward<Args>(args)...));
}

// The pixel limit, checked on the declared size before anything is allocated. 64-bit and divisions
// only, so no declared size can overflow the check.
void check_size(const Source& src, int64_t width, int64_t height, int64_t max_pixels);

// A DecodedImage of width x height RGB pixels (uninitialized), recording the file's channels and format.
DecodedImage new_image(const Source& src, int64_t width, int64_t height, int channels);

inline uint32_t u16le(const uint8_t* p) { return p[0] | (uint32_t{p[1]} << 8); }
inline uint32_t u32le(const uint8_t* p) { return u16le(p) | (u16le(p + 2) << 16); }
inline uint32_t u16be(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
inline uint32_t u32be(const uint8_t* p) { return (u16be(p) << 16) | u16be(p + 2); }

// True when [offset, offset + count * each) lies inside a buffer of `size` bytes.
inline bool fits(uint64_t offset, uint64_t count, uint64_t each, uint64_t size) {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, each, &bytes)) return false;
  return offset <= size && bytes <= size - offset;
}

// A 256-entry RGB palette: the file's colours, then PIL's default for indices past them. PIL 9.4's
// palettes start as the gray ramp (i, i, i) and the file's colours overwrite their first entries, so
// an index beyond the file's palette reads as gray level i (checked for PNG, GIF and BMP).
struct Palette {
  std::array<uint8_t, 256 * 3> rgb;
  Palette() {
    for (int i = 0; i < 256; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = static_cast<uint8_t>(i);
  }
  void set(int i, uint8_t r, uint8_t g, uint8_t b) {
    rgb[3 * i] = r;
    rgb[3 * i + 1] = g;
    rgb[3 * i + 2] = b;
  }
  const uint8_t* at(int i) const { return &rgb[3 * i]; }
};

// Each format's reader (jpeg.cpp, png.cpp, webp.cpp, gif.cpp, bmp.cpp, pnm.cpp): the size the file
// declares, read without decoding the pixels, and the whole image.
ImageHeader jpeg_header(const Source& src, int64_t max_pixels);
DecodedImage decode_jpeg(const Source& src, int64_t max_pixels);
ImageHeader png_header(const Source& src, int64_t max_pixels);
DecodedImage decode_png(const Source& src, int64_t max_pixels);
ImageHeader webp_header(const Source& src, int64_t max_pixels);
DecodedImage decode_webp(const Source& src, int64_t max_pixels);
ImageHeader gif_header(const Source& src, int64_t max_pixels);
DecodedImage decode_gif(const Source& src, int64_t max_pixels);
ImageHeader bmp_header(const Source& src, int64_t max_pixels);
DecodedImage decode_bmp(const Source& src, int64_t max_pixels);
ImageHeader pnm_header(const Source& src, int64_t max_pixels);
DecodedImage decode_pnm(const Source& src, int64_t max_pixels);

// PNM's whitespace (also what sniff_image_format expects after "P1" to "P6").
bool pnm_space(uint8_t c);

}  // namespace birdplane::data::decode
