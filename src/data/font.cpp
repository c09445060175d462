#include "data/font.h"


#include <c10/util/irange.h>

#include "birdplane/check.h"
#include "common/text.h"

namespace birdplane::data {
namespace {

// One glyph: 9 rows of 5 pixels, bit 4 (0b10000) is the leftmost column. Rows 0-6 sit above the
// baseline (capitals and digits use all seven, lower case x-height is rows 2-6), rows 7-8 hold
// descenders. Binary literals keep each bitmap readable as a picture in the source.
using Glyph = std::array<uint8_t, kGlyphHeight>;

struct Entry {
  char c;
  Glyph rows;
};

// clang-format off
constexpr Entry kGlyphs[] = {
  {' ', {0, 0, 0, 0, 0, 0, 0, 0, 0}},
  {'a', {0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0, 0}},
  {'b', {0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110, 0, 0}},
  {'c', {0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110, 0, 0}},
  {'d', {0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111, 0, 0}},
  {'e', {0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0, 0}},
  {'f', {0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000, 0, 0}},
  {'g', {0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110}},
  {'h', {0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0, 0}},
  {'i', {0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110, 0, 0}},
  {'j', {0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100}},
  {'k', {0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0, 0}},
  {'l', {0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0, 0}},
  {'m', {0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10101, 0b10101, 0, 0}},
  {'n', {0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0, 0}},
  {'o', {0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0, 0}},
  {'p', {0b00000, 0b00000, 0b11110, 0b10001, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000}},
  {'q', {0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001}},
  {'r', {0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000, 0, 0}},
  {'s', {0b00000, 0b00000, 0b01111, 0b10000, 0b01110, 0b00001, 0b11110, 0, 0}},
  {'t', {0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110, 0, 0}},
  {'u', {0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0, 0}},
  {'v', {0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0, 0}},
  {'w', {0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010, 0, 0}},
  {'x', {0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0, 0}},
  {'y', {0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110}},
  {'z', {0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111, 0, 0}},
  {'0', {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110, 0, 0}},
  {'1', {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0, 0}},
  {'2', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111, 0, 0}},
  {'3', {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110, 0, 0}},
  {'4', {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010, 0, 0}},
  {'5', {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110, 0, 0}},
  {'6', {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110, 0, 0}},
  {'7', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0, 0}},
  {'8', {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110, 0, 0}},
  {'9', {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100, 0, 0}},
  {'-', {0b00000, 0b00000, 0b00000, 0b00000, 0b01110, 0b00000, 0b00000, 0, 0}},
  {'_', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111, 0}},
  {':', {0b00000, 0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0, 0}},
  {'.', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100, 0, 0}},
  {'#', {0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010, 0, 0}},
};
// An x-height outline: visibly "some character we cannot draw" without looking like a letter.
constexpr Glyph kBox = {0b00000, 0b00000, 0b11111, 0b10001, 0b10001, 0b10001, 0b11111, 0, 0};
// clang-format on

// Upper case draws as lower case: a caption such as "Bird" stays readable instead of turning into
// boxes.
const Glyph* find_glyph(char c) {
  const char key = to_lower(c);
  for (const auto& e : kGlyphs)
    if (e.c == key) return &e.rows;
  return nullptr;
}

}  // namespace

bool has_glyph(char c) { return find_glyph(c) != nullptr; }

int text_width(const std::string& text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kGlyphAdvance - 1) * scale;
}

int text_height(int scale) { return kGlyphHeight * scale; }

void draw_text(at::Tensor& canvas_u8, int x, int y, const std::string& text,
               std::array<uint8_t, 3> color, int scale) {
  BIRDPLANE_CHECK(canvas_u8.defined() && canvas_u8.dim() == 3 && canvas_u8.size(0) == 3 &&
                      canvas_u8.scalar_type() == at::kByte && canvas_u8.device().is_cpu(),
                  "draw_text needs a uint8 [3,H,W] CPU canvas, got {} {} on {}",
                  canvas_u8.defined() ? std::string(c10::toString(canvas_u8.scalar_type())) : "undefined",
                  canvas_u8.defined() ? c10::str(canvas_u8.sizes()) : "[]",
                  canvas_u8.defined() ? canvas_u8.device().str() : "-");
  BIRDPLANE_CHECK(scale >= 1, "draw_text: scale must be at least 1, got {}", scale);
  // An accessor honours the strides, so the canvas may be a view (a cell of a larger grid).
  auto px = canvas_u8.accessor<uint8_t, 3>();
  const int64_t height = canvas_u8.size(1);
  const int64_t width = canvas_u8.size(2);
  int pen_x = x;
  for (char ch : text) {
    const Glyph* glyph = find_glyph(ch);
    const Glyph& rows = glyph ? *glyph : kBox;
    for (int gy = 0; gy < kGlyphHeight; ++gy) {
      for (int gx = 0; gx < kGlyphWidth; ++gx) {
        if (!(rows[gy] & (1u << (kGlyphWidth - 1 - gx)))) continue;
        for (int sy = 0; sy < scale; ++sy) {
          const int64_t py = static_cast<int64_t>(y) + gy * scale + sy;
          if (py < 0 || py >= height) continue;
          for (int sx = 0; sx < scale; ++sx) {
            const int64_t qx = static_cast<int64_t>(pen_x) + gx * scale + sx;
            if (qx < 0 || qx >= width) continue;
            for (int c : c10::irange(3)) px[c][py][qx] = color[c];
          }
        }
      }
    }
    pen_x += kGlyphAdvance * scale;
  }
}

}  // namespace birdplane::data
