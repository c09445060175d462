// A tiny built-in bitmap font for captions on image grids (class names, indexes), so that writing a
// labelled PNG needs no font files and no text library.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace birdplane::data {

/// Glyph cell at scale 1: 5 pixels wide, 9 tall (7 above the baseline, 2 for descenders of g j p q y).
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 9;
/// Horizontal advance per character at scale 1: the glyph plus one pixel of spacing.
inline constexpr int kGlyphAdvance = kGlyphWidth + 1;

/// True when `c` has a glyph of its own: a-z (A-Z draw as lower case), 0-9, space, - _ : . #.
/// Every other character draws as a small box.
bool has_glyph(char c);

/// Width in pixels of `text` drawn at `scale` (no trailing spacing; 0 for empty text).
int text_width(const std::string& text, int scale = 1);

/// Height in pixels of one line of text at `scale` (kGlyphHeight * scale, descenders included).
int text_height(int scale = 1);

/// Draws `text` into `canvas_u8` (uint8 [3,H,W], CPU, any strides) with its top-left corner at
/// (x, y), each font pixel a scale x scale block of `color`. Pixels outside the canvas are clipped.
/// Throws birdplane::Error when the canvas is not uint8 [3,H,W] or scale < 1.
void draw_text(at::Tensor& canvas_u8, int x, int y, const std::string& text,
               std::array<uint8_t, 3> color, int scale = 1);

}  // namespace birdplane::data
