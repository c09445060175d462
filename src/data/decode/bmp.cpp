// BMP, our own reader of what PIL 9.4's BmpImagePlugin reads: headers of 12 (OS/2 1.x), 40, 64,
// 108 (V4) and 124 (V5) bytes; 1/4/8-bit palettes, 16-bit 5-5-5, 24-bit, 32-bit (the fourth byte
// is padding), the BI_BITFIELDS layouts PIL knows (16-bit 5-6-5 and 5-5-5, 24-bit BGR, six 32-bit
// ones), RLE8 and RLE4; bottom-up, or top-down when the height's top byte is 0xFF. 5- and 6-bit
// samples widen as PIL does, v * 255 / 31 (or 63) rounded down.
//
// PIL's quirks are followed, not fixed: the pixel data starts at bfOffBits (or right after the
// palette when it is 0), 4 bytes a palette colour further when bfOffBits points right after the
// header; a
// 40-byte header's BI_BITFIELDS masks are read after it; in RLE data a delta escape skips two
// bytes before the two it uses, an odd RLE4 literal run reads one byte too few, and the padding
// after literal runs aligns to the file's start. Refused: other header sizes, 2 bits per pixel,
// JPEG/PNG inside a BMP, other bitfield masks, palettes of more than 256 colours (PIL refuses all
// of these too, the last unless the file is too short to hold them), RLE8/RLE4 in files of another bit depth, and palettes PIL takes for gray levels but
// then reads wrongly or not at all (a 4-bit file whose palette is gray levels 0..15, RLE data with
// a black-and-white palette).
#include "data/decode/decoders.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace birdplane::data::decode {
namespace {

enum class BmpLayout { kPalette, kBgr15, kBgr16, kBgr, kBgrx, kXbgr, kAbgr, kRgba, kBgra };

struct BmpInfo {
  int64_t width = 0, height = 0;
  bool top_down = false;
  int bits = 0;
  uint32_t compression = 0;  // 0 raw, 1 RLE8, 2 RLE4, 3 bitfields
  BmpLayout layout = BmpLayout::kPalette;
  int channels = 3;
  Palette palette;
  uint64_t pixel_offset = 0;
};

BmpInfo parse_bmp(const Source& src, int64_t max_pixels) {
  const uint8_t* d = src.data;
  if (src.size < 18) fail_truncated(src);
  const uint32_t header_size = u32le(d + 14);
  if (header_size != 12 && header_size != 40 && header_size != 64 && header_size != 108 && header_size != 124)
    fail_unsupported(src, "a BMP with a {}-byte header", header_size);
  if (src.size < 14 + uint64_t{header_size}) fail_truncated(src);

  BmpInfo info;
  uint64_t offset = u32le(d + 10);
  uint64_t cursor = 14 + header_size;  // where PIL's file position is after the header
  int entry_size = 4;
  uint64_t colors = 0;
  std::array<uint32_t, 4> masks{};
  if (header_size == 12) {
    info.width = u16le(d + 18);
    info.height = u16le(d + 20);
    info.bits = static_cast<int>(u16le(d + 24));
    entry_size = 3;
  } else {
    info.width = u32le(d + 18);
    info.top_down = d[25] == 0xFF;
    info.height = info.top_down ? (int64_t{1} << 32) - u32le(d + 22) : u32le(d + 22);
    info.bits = static_cast<int>(u16le(d + 28));
    info.compression = u32le(d + 30);
    colors = u32le(d + 46);
    if (info.compression == 3) {
      if (header_size >= 56) {
        for (int i = 0; i < 4; ++i) masks[i] = u32le(d + 54 + 4 * i);
      } else {
        if (src.size < 66) fail_truncated(src);
        for (int i = 0; i < 3; ++i) masks[i] = u32le(d + 54 + 4 * i);
        cursor = 66;
      }
    }
  }
  if (colors == 0 && info.bits <= 8) colors = uint64_t{1} << info.bits;
  if (offset == 14 + uint64_t{header_size} && info.bits <= 8) offset += 4 * colors;
  check_size(src, info.width, info.height, max_pixels);

  const int bits = info.bits;
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
    fail_unsupported(src, "a BMP with {} bits per pixel", bits);
  switch (info.compression) {
    case 0:
      info.layout = bits <= 8 ? BmpLayout::kPalette : bits == 16 ? BmpLayout::kBgr15
                    : bits == 24 ? BmpLayout::kBgr : BmpLayout::kBgrx;
      break;
    case 1:
    case 2:
      if (bits != (info.compression == 1 ? 8 : 4))
        fail_unsupported(src, "{} {}-bit BMP compressed with {}", bits == 8 ? "an" : "a", bits,
                         info.compression == 1 ? "RLE8" : "RLE4");
      break;
    case 3: {
      using M = std::array<uint32_t, 4>;
      const M m = masks;
      const M rgb{m[0], m[1], m[2], 0};
      if (bits == 32 && m == M{0xFF0000, 0xFF00, 0xFF, 0}) info.layout = BmpLayout::kBgrx;
      else if (bits == 32 && m == M{0xFF000000, 0xFF0000, 0xFF00, 0}) info.layout = BmpLayout::kXbgr;
      else if (bits == 32 && m == M{0xFF000000, 0xFF0000, 0xFF00, 0xFF}) info.layout = BmpLayout::kAbgr;
      else if (bits == 32 && m == M{0xFF, 0xFF00, 0xFF0000, 0xFF000000}) info.layout = BmpLayout::kRgba;
      else if (bits == 32 && (m == M{0xFF0000, 0xFF00, 0xFF, 0xFF000000} || m == M{0, 0, 0, 0}))
        info.layout = BmpLayout::kBgra;
      else if (bits == 24 && rgb == M{0xFF0000, 0xFF00, 0xFF, 0}) info.layout = BmpLayout::kBgr;
      else if (bits == 16 && rgb == M{0xF800, 0x7E0, 0x1F, 0}) info.layout = BmpLayout::kBgr16;
      else if (bits == 16 && rgb == M{0x7C00, 0x3E0, 0x1F, 0}) info.layout = BmpLayout::kBgr15;
      else
        fail_unsupported(src, "a {}-bit BMP with bitfield masks {:#x} {:#x} {:#x} {:#x}", bits, m[0], m[1], m[2], m[3]);
      break;
    }
    default:
      fail_unsupported(src, "a BMP with compression {}{}", info.compression,
                       info.compression == 4 ? " (JPEG)" : info.compression == 5 ? " (PNG)" : "");
  }
  const BmpLayout l = info.layout;
  info.channels = (l == BmpLayout::kAbgr || l == BmpLayout::kRgba || l == BmpLayout::kBgra) ? 4 : 3;

  if (bits <= 8) {
    if (colors > 256) fail_unsupported(src, "a BMP palette of {} colours", colors);
    if (!fits(cursor, colors, entry_size, src.size)) fail_truncated(src);
    // PIL drops a palette of gray levels (black and white for two colours, else i for entry i) and
    // reads the pixels as gray values, which is right only for 1 bit with two colours, 8 bits, and
    // RLE8/RLE4 data that it expands to one byte per pixel before.
    bool gray = true;
    for (uint64_t i = 0; i < colors; ++i) {
      const uint8_t* e = d + cursor + i * entry_size;
      const int v = colors == 2 ? (i == 0 ? 0 : 255) : static_cast<int>(i);
      gray = gray && e[0] == v && e[1] == v && e[2] == v;
      info.palette.set(static_cast<int>(i), e[2], e[1], e[0]);
    }
    if (gray) {
      const bool two = colors == 2;
      const bool read_right = info.compression == 0 ? (two ? bits == 1 : bits == 8) : !two;
      if (!read_right)
        fail_unsupported(src, "{} {}-bit BMP{} whose {} palette colours are all gray levels (PIL 9.4 {} it)",
                         bits == 8 ? "an" : "a", bits, info.compression ? " with RLE" : "", colors,
                         info.compression ? "cannot read" : "misreads");
    }
    info.channels = gray ? 1 : 3;
    cursor += colors * entry_size;
  }
  info.pixel_offset = offset != 0 ? offset : cursor;
  return info;
}

// 5- or 6-bit samples to 8 bits as PIL's BGR;15 and BGR;16 unpackers do (rounded down).
inline uint8_t widen(uint32_t v, uint32_t max) { return static_cast<uint8_t>(v * 255 / max); }

void bmp_unpack_row(const BmpInfo& info, const uint8_t* in, uint8_t* out, int width) {
  for (int x = 0; x < width; ++x, out += 3) {
    switch (info.layout) {
      case BmpLayout::kPalette: {
        int index = 0;
        if (info.bits == 8) index = in[x];
        else if (info.bits == 4) index = (in[x >> 1] >> ((x & 1) ? 0 : 4)) & 0xF;
        else index = (in[x >> 3] >> (7 - (x & 7))) & 1;
        std::memcpy(out, info.palette.at(index), 3);
        break;
      }
      case BmpLayout::kBgr15: {
        const uint32_t p = u16le(in + 2 * x);
        out[0] = widen((p >> 10) & 31, 31), out[1] = widen((p >> 5) & 31, 31), out[2] = widen(p & 31, 31);
        break;
      }
      case BmpLayout::kBgr16: {
        const uint32_t p = u16le(in + 2 * x);
        out[0] = widen((p >> 11) & 31, 31), out[1] = widen((p >> 5) & 63, 63), out[2] = widen(p & 31, 31);
        break;
      }
      case BmpLayout::kBgr: {
        const uint8_t* p = in + 3 * x;
        out[0] = p[2], out[1] = p[1], out[2] = p[0];
        break;
      }
      case BmpLayout::kBgrx:
      case BmpLayout::kBgra: {
        const uint8_t* p = in + 4 * x;
        out[0] = p[2], out[1] = p[1], out[2] = p[0];
        break;
      }
      case BmpLayout::kXbgr:
      case BmpLayout::kAbgr: {
        const uint8_t* p = in + 4 * x;
        out[0] = p[3], out[1] = p[2], out[2] = p[1];
        break;
      }
      case BmpLayout::kRgba: {
        const uint8_t* p = in + 4 * x;
        out[0] = p[0], out[1] = p[1], out[2] = p[2];
        break;
      }
    }
  }
}

// RLE8/RLE4 expanded to one palette index per pixel, as PIL 9.4's BmpRleDecoder does (quirks
// included, see above). Rows come out in file order (bottom-up unless top-down).
std::vector<uint8_t> bmp_expand_rle(const Source& src, const BmpInfo& info) {
  const uint8_t* d = src.data;
  const uint64_t size = src.size;
  const uint64_t width = static_cast<uint64_t>(info.width);
  const uint64_t total = width * static_cast<uint64_t>(info.height);
  const bool rle4 = info.compression == 2;
  std::vector<uint8_t> indices(total, 0);
  uint64_t length = 0;  // how many indices PIL's buffer holds (may pass `total`)
  uint64_t x = 0;
  uint64_t pos = info.pixel_offset;
  auto push = [&](uint8_t v) {
    if (length < total) indices[length] = v;
    ++length;
  };
  while (length < total) {
    if (pos >= size || size - pos < 2) break;
    const uint8_t count = d[pos], value = d[pos + 1];
    pos += 2;
    if (count != 0) {  // a run
      const uint64_t n = x + count > width ? (x < width ? width - x : 0) : count;
      for (uint64_t i = 0; i < n; ++i) push(rle4 ? ((i % 2 == 0) ? value >> 4 : value & 0xF) : value);
      x += n;
    } else if (value == 0) {  // end of line
      while (length % width != 0) push(0);
      x = 0;
    } else if (value == 1) {  // end of bitmap
      break;
    } else if (value == 2) {  // delta: PIL skips two bytes, then reads (right, up)
      if (size - pos < 2) break;
      pos += 2;
      if (size - pos < 2) fail_truncated(src);
      const uint64_t right = d[pos], up = d[pos + 1];
      pos += 2;
      length += right + up * width;
      x = length % width;
    } else {  // a literal run of `value` pixels
      const uint64_t want = rle4 ? value / 2 : value;
      const uint64_t got = std::min<uint64_t>(want, size - pos);
      for (uint64_t i = 0; i < got; ++i) {
        const uint8_t b = d[pos + i];
        if (rle4) {
          push(b >> 4);
          push(b & 0xF);
        } else {
          push(b);
        }
      }
      pos += got;
      if (got < want) break;
      x += value;
      if (pos % 2 != 0) ++pos;  // PIL aligns to the file's start
    }
  }
  if (length < total) fail_truncated(src);
  return indices;
}

}  // namespace

ImageHeader bmp_header(const Source& src, int64_t max_pixels) {
  const BmpInfo info = parse_bmp(src, max_pixels);
  return {static_cast<int>(info.width), static_cast<int>(info.height), src.format};
}

DecodedImage decode_bmp(const Source& src, int64_t max_pixels) {
  const BmpInfo info = parse_bmp(src, max_pixels);
  const int width = static_cast<int>(info.width), height = static_cast<int>(info.height);
  if (info.compression == 1 || info.compression == 2) {
    const std::vector<uint8_t> indices = bmp_expand_rle(src, info);
    DecodedImage out = new_image(src, width, height, info.channels);
    for (int r = 0; r < height; ++r) {
      const int y = info.top_down ? r : height - 1 - r;
      const uint8_t* in = indices.data() + static_cast<size_t>(r) * width;
      uint8_t* row = out.pixels.data() + static_cast<size_t>(y) * width * 3;
      for (int x = 0; x < width; ++x) std::memcpy(row + 3 * x, info.palette.at(in[x]), 3);
    }
    return out;
  }
  // PIL reads rows of `stride` bytes but needs only the pixels of the last one.
  const uint64_t row_bytes = (static_cast<uint64_t>(width) * info.bits + 7) / 8;
  const uint64_t stride = ((static_cast<uint64_t>(width) * info.bits + 31) >> 3) & ~uint64_t{3};
  if (!fits(info.pixel_offset, static_cast<uint64_t>(height - 1), stride, src.size) ||
      !fits(info.pixel_offset + (height - 1) * stride, 1, row_bytes, src.size))
    fail_truncated(src);
  DecodedImage out = new_image(src, width, height, info.channels);
  for (int r = 0; r < height; ++r) {
    const int y = info.top_down ? r : height - 1 - r;
    bmp_unpack_row(info, src.data + info.pixel_offset + static_cast<uint64_t>(r) * stride,
                   out.pixels.data() + static_cast<size_t>(y) * width * 3, width);
  }
  return out;
}

}  // namespace birdplane::data::decode
