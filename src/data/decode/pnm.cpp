// PNM: P1-P6, read as PIL 9.4's PpmImagePlugin reads them. Header tokens are separated by
// whitespace; '#' starts a comment up to the next CR or LF, anywhere, without ending a token; one
// whitespace byte ends the header. Samples scale as PIL scales them: v -> round(v / maxval * 255)
// (round half to even, min 255), except that gray files with maxval > 255 become PIL's 32-bit mode
// "I" scaled to 0..65535, whose conversion to RGB clips at 255 (so, as in PIL, they come out nearly
// white). P1 and P4 are bitmaps: 1 is black. Plain (ASCII) data stops being read once every sample
// is in; PIL also checks the rest of its 1 MiB read block, so a plain file with junk after its
// samples is read here but refused by PIL.
#include "data/decode/decoders.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace birdplane::data::decode {

bool pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

namespace {

struct PnmInfo {
  int kind = 0;  // 1..6
  int64_t width = 0, height = 0;
  uint32_t maxval = 1;
  size_t raster = 0;  // where the samples start
};

// Skips a comment: from '#' up to and including the next CR or LF.
size_t pnm_skip_comment(const Source& src, size_t pos) {
  while (pos < src.size && src.data[pos] != '\n' && src.data[pos] != '\r') ++pos;
  return pos < src.size ? pos + 1 : pos;
}

// One header number, as PIL's _read_token reads it: at most 10 characters.
uint64_t pnm_header_number(const Source& src, size_t& pos, const char* what) {
  std::string token;
  while (token.size() <= 10) {
    if (pos >= src.size) break;
    const uint8_t c = src.data[pos++];
    if (pnm_space(c)) {
      if (token.empty()) continue;
      break;
    }
    if (c == '#') {
      pos = pnm_skip_comment(src, pos);
      continue;
    }
    token.push_back(static_cast<char>(c));
  }
  if (token.empty()) fail_truncated(src);
  if (token.size() > 10) fail_damaged(src, "the {} is too long a token", what);
  uint64_t value = 0;
  for (char c : token) {
    if (c < '0' || c > '9') fail_damaged(src, "the {} is '{}', not a number", what, token);
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

PnmInfo parse_pnm(const Source& src, int64_t max_pixels) {
  if (src.size < 3) fail_truncated(src);
  PnmInfo info;
  info.kind = src.data[1] - '0';
  size_t pos = 3;  // "P<n>" and one whitespace byte
  info.width = static_cast<int64_t>(pnm_header_number(src, pos, "width"));
  info.height = static_cast<int64_t>(pnm_header_number(src, pos, "height"));
  if (info.kind != 1 && info.kind != 4) {
    const uint64_t maxval = pnm_header_number(src, pos, "maxval");
    if (maxval < 1 || maxval > 65535) fail_damaged(src, "maxval {} is outside 1..65535", maxval);
    info.maxval = static_cast<uint32_t>(maxval);
  }
  check_size(src, info.width, info.height, max_pixels);
  info.raster = pos;
  return info;
}

// The 8-bit RGB value of each sample value 0..limit, as PIL computes it (see above).
std::vector<uint8_t> pnm_levels(const PnmInfo& info, uint32_t limit) {
  const bool gray = info.kind == 2 || info.kind == 5;
  const double out_max = (gray && info.maxval > 255) ? 65535.0 : 255.0;
  std::vector<uint8_t> levels(limit + 1);
  for (uint32_t v = 0; v <= limit; ++v) {
    double scaled = std::nearbyint(static_cast<double>(v) / info.maxval * out_max);  // ties to even
    levels[v] = static_cast<uint8_t>(std::min(scaled, 255.0));
  }
  return levels;
}

}  // namespace

ImageHeader pnm_header(const Source& src, int64_t max_pixels) {
  const PnmInfo info = parse_pnm(src, max_pixels);
  return {static_cast<int>(info.width), static_cast<int>(info.height), src.format};
}

DecodedImage decode_pnm(const Source& src, int64_t max_pixels) {
  const PnmInfo info = parse_pnm(src, max_pixels);
  const int bands = (info.kind == 3 || info.kind == 6) ? 3 : 1;
  const uint64_t samples = static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height) * bands;
  const uint8_t* d = src.data;
  // Enough bytes for every sample, checked before allocating: raw data has a fixed size, plain data
  // at least one character per sample (P1) or a digit and a separator between samples (P2, P3).
  const uint64_t row_bits = static_cast<uint64_t>(info.width) * (info.kind == 4 ? 1 : 8);
  const int sample_bytes = info.maxval < 256 ? 1 : 2;
  const bool enough = info.kind == 4   ? fits(info.raster, static_cast<uint64_t>(info.height), (row_bits + 7) / 8, src.size)
                      : info.kind >= 5 ? fits(info.raster, samples, sample_bytes, src.size)
                      : info.kind == 1 ? fits(info.raster, samples, 1, src.size)
                                       : fits(info.raster, samples * 2 - 1, 1, src.size);
  if (!enough) fail_truncated(src);
  DecodedImage out = new_image(src, info.width, info.height, bands);
  uint8_t* px = out.pixels.data();
  // Writes sample i (0 <= i < samples) as RGB: gray samples fill all three channels.
  auto put = [&](uint64_t i, uint8_t v) {
    if (bands == 3) px[i] = v;
    else px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = v;
  };

  if (info.kind == 4) {
    const uint64_t row_bytes = (row_bits + 7) / 8;
    for (int64_t y = 0; y < info.height; ++y) {
      const uint8_t* row = d + info.raster + y * row_bytes;
      for (int64_t x = 0; x < info.width; ++x)
        put(y * info.width + x, ((row[x >> 3] >> (7 - (x & 7))) & 1) ? 0 : 255);
    }
    return out;
  }
  if (info.kind == 5 || info.kind == 6) {
    const std::vector<uint8_t> levels = pnm_levels(info, sample_bytes == 1 ? 255 : 65535);
    const uint8_t* s = d + info.raster;
    for (uint64_t i = 0; i < samples; ++i) put(i, levels[sample_bytes == 1 ? s[i] : u16be(s + 2 * i)]);
    return out;
  }

  // Plain data: comments are cut out wherever they are (joining what surrounds them, as PIL does).
  size_t pos = info.raster;
  uint64_t i = 0;
  if (info.kind == 1) {
    while (i < samples && pos < src.size) {
      const uint8_t c = d[pos++];
      if (c == '#') pos = pnm_skip_comment(src, pos);
      else if (c == '0' || c == '1') put(i++, c == '1' ? 0 : 255);
      else if (!pnm_space(c)) fail_damaged(src, "byte {} in bitmap data where 0 or 1 is expected", c);
    }
    if (i < samples) fail_truncated(src);
    return out;
  }
  const std::vector<uint8_t> levels = pnm_levels(info, info.maxval);
  std::string token;
  auto flush = [&] {
    if (token.empty()) return;
    if (token.size() > 10) fail_damaged(src, "a sample token longer than 10 characters");
    uint64_t v = 0;
    for (char c : token) {
      if (c < '0' || c > '9') fail_damaged(src, "the sample '{}' is not a number", token);
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > info.maxval) fail_damaged(src, "the sample {} is above maxval {}", v, info.maxval);
    put(i++, levels[v]);
    token.clear();
  };
  while (i < samples && pos < src.size) {
    const uint8_t c = d[pos++];
    if (c == '#') {
      pos = pnm_skip_comment(src, pos);
    } else if (pnm_space(c)) {
      flush();
    } else {
      token.push_back(static_cast<char>(c));
      if (token.size() > 10) flush();
    }
  }
  if (i < samples) flush();
  if (i < samples) fail_truncated(src);
  return out;
}

}  // namespace birdplane::data::decode
