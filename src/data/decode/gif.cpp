// GIF (giflib), the first frame as PIL 9.4 shows it: the canvas is the logical screen, enlarged to
// hold the frame when the frame reaches past it; outside the frame it holds the frame's transparent
// index when a graphic control extension sets one, else index 0; indices map through the frame's
// local colour table, else the global one, else gray (i, i, i), and past the table's end to gray
// (i, i, i). Transparency is not blended: the transparent index shows its palette colour.
#include "data/decode/decoders.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <gif_lib.h>

namespace birdplane::data::decode {
namespace {

struct GifInput {
  const uint8_t* data;
  size_t size;
  size_t pos;
  bool short_read;
};

int gif_read(GifFileType* gif, GifByteType* out, int n) {
  GifInput* in = static_cast<GifInput*>(gif->UserData);
  if (n <= 0) return 0;
  const size_t k = std::min(static_cast<size_t>(n), in->size - in->pos);
  std::memcpy(out, in->data + in->pos, k);
  in->pos += k;
  if (k < static_cast<size_t>(n)) in->short_read = true;
  return static_cast<int>(k);
}

struct GifCloser {
  void operator()(GifFileType* gif) const {
    int error = 0;
    DGifCloseFile(gif, &error);
  }
};

struct GifReader {
  GifInput input;
  std::unique_ptr<GifFileType, GifCloser> gif;
  int transparency = -1;
  int64_t canvas_width = 0, canvas_height = 0;

  explicit GifReader(const Source& src) : input{src.data, src.size, 0, false}, src_(src) {}

  [[noreturn]] void fail_gif(int error) const {
    if (input.short_read) fail_truncated(src_);
    const char* reason = GifErrorString(error);
    fail_damaged(src_, "{}", reason ? reason : "giflib error");
  }

  // Reads up to the first frame's image descriptor (and its local colour table).
  void read_to_first_frame(int64_t max_pixels) {
    int error = 0;
    gif.reset(DGifOpen(&input, gif_read, &error));
    if (!gif) fail_gif(error);
    GifFileType* g = gif.get();
    for (;;) {
      GifRecordType type = UNDEFINED_RECORD_TYPE;
      if (DGifGetRecordType(g, &type) == GIF_ERROR) fail_gif(g->Error);
      if (type == IMAGE_DESC_RECORD_TYPE) {
        check_code_size();
        if (DGifGetImageDesc(g) == GIF_ERROR) fail_gif(g->Error);
        break;
      }
      if (type == TERMINATE_RECORD_TYPE) fail_damaged(src_, "it ends before its first image");
      if (type != EXTENSION_RECORD_TYPE) fail_damaged(src_, "unknown block");
      int code = 0;
      GifByteType* block = nullptr;
      if (DGifGetExtension(g, &code, &block) == GIF_ERROR) fail_gif(g->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE) {
        // PIL reads the flags, the delay and, with the flag set, the transparent index.
        if (!block || block[0] < 3 || ((block[1] & 1) && block[0] < 4))
          fail_damaged(src_, "a graphic control extension is too short");
        if (block[1] & 1) transparency = block[4];
      }
      while (block != nullptr)
        if (DGifGetExtensionNext(g, &block) == GIF_ERROR) fail_gif(g->Error);
    }
    const GifImageDesc& d = g->Image;
    if (d.Width <= 0 || d.Height <= 0) fail_damaged(src_, "the first frame is empty ({}x{})", d.Width, d.Height);
    canvas_width = std::max<int64_t>(g->SWidth, int64_t{d.Left} + d.Width);
    canvas_height = std::max<int64_t>(g->SHeight, int64_t{d.Top} + d.Height);
    check_size(src_, canvas_width, canvas_height, max_pixels);
  }

  // Walks the first frame's LZW codes the way PIL's decoder does, up to its last pixel, and refuses
  // the two things PIL calls a broken data stream but giflib decodes anyway: a first code after a
  // clear code that is not a literal, and a code above the next free table entry. (A stream that
  // ends early is left to giflib, which refuses it too.)
  void check_lzw(uint64_t pixels) const {
    if (code_size_at_ == 0) return;
    const uint8_t* d = src_.data;
    const int min_size = d[code_size_at_];
    const uint32_t clear = 1u << min_size, end = clear + 1;
    std::vector<uint16_t> length(4096, 1);  // pixels each table entry expands to
    uint32_t next = clear + 2, width = min_size + 1;
    bool after_clear = true;
    uint32_t prev_length = 0;
    uint64_t produced = 0;
    size_t pos = code_size_at_ + 1, block_left = 0;
    uint32_t bits = 0, nbits = 0;
    while (produced < pixels) {
      while (nbits < width) {
        if (block_left == 0) {
          if (pos >= src_.size || d[pos] == 0) return;
          block_left = d[pos++];
        }
        if (pos >= src_.size) return;
        bits |= uint32_t{d[pos++]} << nbits;
        nbits += 8;
        --block_left;
      }
      const uint32_t code = bits & ((1u << width) - 1);
      bits >>= width;
      nbits -= width;
      if (code == clear) {
        next = clear + 2, width = min_size + 1, after_clear = true;
        continue;
      }
      if (code == end) return;
      if (after_clear) {
        if (code > clear) fail_damaged(src_, "broken LZW data: code {} right after a clear code", code);
        after_clear = false;
        prev_length = 1;
        ++produced;
        continue;
      }
      if (code > next) fail_damaged(src_, "broken LZW data: code {} where at most {} can follow", code, next);
      const uint32_t this_length = code == next ? prev_length + 1 : (code < clear ? 1 : length[code]);
      produced += this_length;
      if (next < 4096) {
        length[next] = static_cast<uint16_t>(std::min<uint32_t>(prev_length + 1, 4096));
        if (next == (1u << width) - 1 && width < 12) ++width;
        ++next;
      }
      prev_length = this_length;
    }
  }

 private:
  // The frame's LZW code size, read ahead of giflib: the format allows 2 to 8. Outside that range
  // giflib and PIL read the codes differently (size 1) or giflib refuses them (9 and more).
  void check_code_size() {
    code_size_at_ = 0;
    const size_t descriptor = input.pos;  // just after the ',' that giflib has read
    if (descriptor > src_.size || src_.size - descriptor < 9) return;  // giflib reports the truncation
    const uint8_t flags = src_.data[descriptor + 8];
    const size_t at = descriptor + 9 + ((flags & 0x80) ? size_t{3} << ((flags & 7) + 1) : 0);
    if (at >= src_.size) return;
    const int code_size = src_.data[at];
    if (code_size < 2 || code_size > 8)
      fail_unsupported(src_, "a GIF frame with LZW code size {} (2 to 8 expected)", code_size);
    code_size_at_ = at;
  }

  size_t code_size_at_ = 0;  // where the first frame's LZW code size byte is (0: unknown)
  const Source& src_;
};

}  // namespace

ImageHeader gif_header(const Source& src, int64_t max_pixels) {
  GifReader reader(src);
  reader.read_to_first_frame(max_pixels);
  return {static_cast<int>(reader.canvas_width), static_cast<int>(reader.canvas_height), src.format};
}

DecodedImage decode_gif(const Source& src, int64_t max_pixels) {
  GifReader reader(src);
  reader.read_to_first_frame(max_pixels);
  GifFileType* g = reader.gif.get();
  const GifImageDesc& d = g->Image;
  const ColorMapObject* map = d.ColorMap ? d.ColorMap : g->SColorMap;
  Palette palette;
  bool gray_ramp = true;  // PIL reads the frame as mode L when its colours are exactly (i, i, i)
  if (map) {
    const int count = std::min(map->ColorCount, 256);
    for (int i = 0; i < count; ++i) {
      const GifColorType& c = map->Colors[i];
      palette.set(i, c.Red, c.Green, c.Blue);
      gray_ramp = gray_ramp && c.Red == i && c.Green == i && c.Blue == i;
    }
  }
  const int channels = gray_ramp ? 1 : (reader.transparency >= 0 ? 4 : 3);
  DecodedImage out = new_image(src, reader.canvas_width, reader.canvas_height, channels);

  const uint8_t* fill = palette.at(reader.transparency >= 0 ? reader.transparency : 0);
  for (size_t i = 0; i < out.pixels.size(); i += 3) std::memcpy(&out.pixels[i], fill, 3);

  // Rows in file order; an interlaced frame stores rows 0, 8, 16, ..., then 4, 12, ..., then
  // 2, 6, ..., then the odd rows.
  std::vector<int> order;
  order.reserve(static_cast<size_t>(d.Height));
  if (d.Interlace) {
    const int starts[] = {0, 4, 2, 1}, steps[] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass)
      for (int y = starts[pass]; y < d.Height; y += steps[pass]) order.push_back(y);
  } else {
    for (int y = 0; y < d.Height; ++y) order.push_back(y);
  }
  reader.check_lzw(static_cast<uint64_t>(d.Width) * static_cast<uint64_t>(d.Height));
  std::vector<GifPixelType> line(static_cast<size_t>(d.Width));
  const size_t stride = static_cast<size_t>(out.width) * 3;
  for (int y : order) {
    if (DGifGetLine(g, line.data(), d.Width) == GIF_ERROR) reader.fail_gif(g->Error);
    uint8_t* row = out.pixels.data() + static_cast<size_t>(d.Top + y) * stride + static_cast<size_t>(d.Left) * 3;
    for (int x = 0; x < d.Width; ++x) std::memcpy(row + 3 * x, palette.at(line[x]), 3);
  }
  return out;
}

}  // namespace birdplane::data::decode
