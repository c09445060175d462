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
#include "birdplane/data/image_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

// clang-format off
#include <jpeglib.h>  // after <cstdio>: it needs FILE and size_t
#include <jerror.h>
// clang-format on
#include <gif_lib.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "birdplane/check.h"

namespace birdplane::data {
namespace {

// ---------------------------------------------------------------------------------------------
// Shared pieces: the source, messages, the size check, byte access.

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

[[noreturn]] void fail_truncated(const Source& src) {
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
void check_size(const Source& src, int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0)
    fail_image(src, "it declares an empty image of {}x{} pixels ({})", width, height, to_string(src.format));
  if (height > max_pixels || width > max_pixels / height)
    fail_image(src, "it declares {}x{} pixels, above the limit of {}", width, height, max_pixels);
  if (width > INT_MAX || height > INT_MAX)
    fail_image(src, "it declares {}x{} pixels; birdplane reads at most {} pixels a side", width, height, INT_MAX);
}

void check_max_pixels(int64_t max_pixels) {
  BIRDPLANE_CHECK_SETTING(max_pixels >= 1, "max_pixels", "must be at least 1, got {}", max_pixels);
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

uint32_t u16le(const uint8_t* p) { return p[0] | (uint32_t{p[1]} << 8); }
uint32_t u32le(const uint8_t* p) { return u16le(p) | (u16le(p + 2) << 16); }
uint32_t u16be(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t u32be(const uint8_t* p) { return (u16be(p) << 16) | u16be(p + 2); }

// True when [offset, offset + count * each) lies inside a buffer of `size` bytes.
bool fits(uint64_t offset, uint64_t count, uint64_t each, uint64_t size) {
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

// ---------------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo). PIL decodes with libjpeg's defaults too (islow DCT, fancy upsampling). Gray
// files are decoded straight to RGB (libjpeg replicates, as PIL's L -> RGB does). CMYK and YCCK
// files (4 components) are read as PIL reads them: libjpeg's CMYK output, inverted as PIL's
// "CMYK;I" raw mode assumes (Adobe's convention), then PIL's CMYK -> RGB formula
// R = K' - round(C' * K' / 255) with PIL's integer rounding (C' = 255 - C, K' = K), verified for all
// 65536 (C, K) pairs against PIL. (libjpeg turns YCCK into CMYK for both; PIL writes no YCCK files,
// so the tests hold CMYK ones only.)

// More scans than any encoder writes (a progressive file has about ten); a file with thousands of
// tiny scans is a denial of service, decoded in quadratic time.
constexpr int kMaxJpegScans = 1000;

struct JpegJob {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool created;
  bool truncated;
  bool too_many_scans;
};

JpegJob* jpeg_job(j_common_ptr cinfo) { return static_cast<JpegJob*>(cinfo->client_data); }

void jpeg_on_error(j_common_ptr cinfo) {
  JpegJob* job = jpeg_job(cinfo);
  (*cinfo->err->format_message)(cinfo, job->message);
  std::longjmp(job->jump, 1);
}

// Warnings (corrupt data libjpeg can step over) are tolerated as PIL tolerates them, except the
// memory source running dry: libjpeg would pad the rest with gray, PIL reports a truncated file.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
    jpeg_job(cinfo)->truncated = true;
    std::longjmp(jpeg_job(cinfo)->jump, 1);
  }
  cinfo->err->num_warnings++;
}

void jpeg_on_output(j_common_ptr) {}  // the library never prints

void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxJpegScans) {
    jpeg_job(cinfo)->too_many_scans = true;
    std::longjmp(jpeg_job(cinfo)->jump, 1);
  }
}

void jpeg_init(JpegJob* job) {
  std::memset(job, 0, sizeof *job);
  job->cinfo.err = jpeg_std_error(&job->err);
  job->err.error_exit = jpeg_on_error;
  job->err.emit_message = jpeg_on_message;
  job->err.output_message = jpeg_on_output;
  job->cinfo.client_data = job;
  job->progress.progress_monitor = jpeg_on_progress;
}

// Phase 1: the markers up to the first scan (sizes, components).
bool jpeg_read_markers(JpegJob* job, const uint8_t* data, size_t size) {
  if (setjmp(job->jump)) return false;
  jpeg_create_decompress(&job->cinfo);
  job->created = true;
  job->cinfo.progress = &job->progress;
  jpeg_mem_src(&job->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&job->cinfo, TRUE);
  return true;
}

// PIL's CMYK -> RGB for one channel, given libjpeg's (not inverted) C and K.
inline uint8_t cmyk_channel(int c, int k) {
  const int ci = 255 - c;  // PIL's "CMYK;I" unpacking inverts
  const int t = ci * k + 128;
  return static_cast<uint8_t>(k - ((t + (t >> 8)) >> 8));
}

// Phase 2: the pixels, row by row into `out` (width * 3 per row); `cmyk_row` (width * 4 bytes) is
// the scratch row for four-component files.
bool jpeg_read_pixels(JpegJob* job, uint8_t* out, uint8_t* cmyk_row) {
  if (setjmp(job->jump)) return false;
  j_decompress_ptr c = &job->cinfo;
  c->out_color_space = cmyk_row ? JCS_CMYK : JCS_RGB;
  c->dct_method = JDCT_ISLOW;
  c->do_fancy_upsampling = TRUE;
  jpeg_start_decompress(c);
  if (c->output_width != c->image_width || c->output_height != c->image_height ||
      c->output_components != (cmyk_row ? 4 : 3)) {
    std::snprintf(job->message, sizeof job->message, "unexpected output layout %ux%u x%d", c->output_width,
                  c->output_height, c->output_components);
    return false;
  }
  const size_t stride = static_cast<size_t>(c->output_width) * 3;
  while (c->output_scanline < c->output_height) {
    uint8_t* row = out + static_cast<size_t>(c->output_scanline) * stride;
    // Up to 16 rows per call, straight into the image (libjpeg-turbo then writes each group of
    // upsampled rows in place instead of through its own buffer); a four-component file one row at a
    // time through the scratch row, converted below.
    JSAMPROW rows[16];
    JDIMENSION want = 1;
    if (cmyk_row) {
      rows[0] = cmyk_row;
    } else {
      want = std::min<JDIMENSION>(16, c->output_height - c->output_scanline);
      for (JDIMENSION k = 0; k < want; ++k) rows[k] = row + k * stride;
    }
    if (jpeg_read_scanlines(c, rows, want) == 0) {
      std::snprintf(job->message, sizeof job->message, "no scanline returned");
      return false;
    }
    if (!cmyk_row) continue;
    for (JDIMENSION x = 0; x < c->output_width; ++x) {
      const uint8_t* p = cmyk_row + 4 * x;
      row[3 * x] = cmyk_channel(p[0], p[3]);
      row[3 * x + 1] = cmyk_channel(p[1], p[3]);
      row[3 * x + 2] = cmyk_channel(p[2], p[3]);
    }
  }
  jpeg_finish_decompress(c);
  return true;
}

struct JpegDecoder {
  JpegJob job;
  explicit JpegDecoder(const Source& src) : src_(src) { jpeg_init(&job); }
  ~JpegDecoder() {
    if (job.created) jpeg_destroy_decompress(&job.cinfo);
  }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  [[noreturn]] void fail_from_job() const {
    if (job.truncated) fail_truncated(src_);
    if (job.too_many_scans)
      fail_damaged(src_, "more than {} scans; no encoder writes that many, so the file is refused", kMaxJpegScans);
    fail_damaged(src_, "{}", job.message);
  }

  // Reads the markers and checks the size and component count.
  void read_header(int64_t max_pixels) {
    if (!jpeg_read_markers(&job, src_.data, src_.size)) fail_from_job();
    check_size(src_, job.cinfo.image_width, job.cinfo.image_height, max_pixels);
    const int n = job.cinfo.num_components;
    if (n != 1 && n != 3 && n != 4) fail_unsupported(src_, "a JPEG with {} colour components", n);
  }

 private:
  const Source& src_;
};

ImageHeader jpeg_header(const Source& src, int64_t max_pixels) {
  JpegDecoder dec(src);
  dec.read_header(max_pixels);
  return {static_cast<int>(dec.job.cinfo.image_width), static_cast<int>(dec.job.cinfo.image_height), src.format};
}

DecodedImage decode_jpeg(const Source& src, int64_t max_pixels) {
  JpegDecoder dec(src);
  dec.read_header(max_pixels);
  const int components = dec.job.cinfo.num_components;
  DecodedImage out = new_image(src, dec.job.cinfo.image_width, dec.job.cinfo.image_height, components);
  std::vector<uint8_t> cmyk_row(components == 4 ? static_cast<size_t>(out.width) * 4 : 0);
  if (!jpeg_read_pixels(&dec.job, out.pixels.data(), components == 4 ? cmyk_row.data() : nullptr))
    dec.fail_from_job();
  return out;
}

// ---------------------------------------------------------------------------------------------
// PNG (libpng). Transforms give PIL's convert("RGB"): palettes expanded (by our own table, so that
// indices past the palette read as PIL reads them), 1/2/4-bit gray scaled to 0..255, 16-bit
// samples cut to their high byte (PIL's "RGB;16B", "LA;16B", "RGBA;16B"), alpha and tRNS dropped
// without blending, gAMA/iCCP/sBIT ignored. 16-bit gray is PIL's mode "I" ("I;16B"), whose
// conversion to RGB clips: a sample v gives min(v, 255), not v >> 8 (so most 16-bit gray images
// come out nearly white, in PIL and here alike). A checksum error is an error in every chunk: PIL
// checks the chunks before the pixels too (libpng alone would only warn about ancillary ones), and
// a damaged IDAT or IEND checksum, which PIL lets pass, is refused here. So is a missing IEND or a
// zlib stream that ends before the last row (PIL pads such a file with black).

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

// ---------------------------------------------------------------------------------------------
// WebP (libwebp). PIL 9.4 reads every WebP through libwebp's demuxer and animation decoder, into
// RGBA. Here the demuxer checks the container the same way, and a still image's frame (the bytes the
// demuxer delimits, as the animation decoder would decode them) is decoded straight to RGB, alpha
// dropped without blending. The first frame of an animated file goes through the animation decoder
// itself, so canvas areas the frame leaves transparent read as black, as in PIL.

bool webp_truncated(const Source& src) { return src.size < 12 || uint64_t{u32le(src.data + 4)} + 8 > src.size; }

WebPBitstreamFeatures webp_features(const Source& src, int64_t max_pixels) {
  WebPBitstreamFeatures f{};
  const VP8StatusCode status = WebPGetFeatures(src.data, src.size, &f);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail_truncated(src);
  if (status == VP8_STATUS_UNSUPPORTED_FEATURE) fail_unsupported(src, "a WebP with features libwebp cannot read");
  if (status != VP8_STATUS_OK) fail_damaged(src, "libwebp status {}", static_cast<int>(status));
  check_size(src, f.width, f.height, max_pixels);
  return f;
}

ImageHeader webp_header(const Source& src, int64_t max_pixels) {
  const WebPBitstreamFeatures f = webp_features(src, max_pixels);
  return {f.width, f.height, src.format};
}

struct WebPAnimDeleter {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};

DecodedImage decode_animated_webp(const Source& src, const WebPBitstreamFeatures& f) {
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) fail_image(src, "libwebp's animation decoder could not start");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  const WebPData data{src.data, src.size};
  std::unique_ptr<WebPAnimDecoder, WebPAnimDeleter> dec(WebPAnimDecoderNew(&data, &options));
  if (!dec) {
    if (webp_truncated(src)) fail_truncated(src);
    fail_damaged(src, "libwebp could not read the animation");
  }
  WebPAnimInfo info{};
  if (!WebPAnimDecoderGetInfo(dec.get(), &info) || static_cast<int>(info.canvas_width) != f.width ||
      static_cast<int>(info.canvas_height) != f.height)
    fail_damaged(src, "the animation's canvas does not match its header");
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || rgba == nullptr) {
    if (webp_truncated(src)) fail_truncated(src);
    fail_damaged(src, "libwebp could not decode the first frame");
  }
  DecodedImage out = new_image(src, f.width, f.height, f.has_alpha ? 4 : 3);
  const size_t pixels = static_cast<size_t>(f.width) * static_cast<size_t>(f.height);
  for (size_t i = 0; i < pixels; ++i) std::memcpy(&out.pixels[3 * i], rgba + 4 * i, 3);
  return out;
}

struct WebPDemuxDeleter {
  void operator()(WebPDemuxer* d) const { WebPDemuxDelete(d); }
};

DecodedImage decode_webp(const Source& src, int64_t max_pixels) {
  const WebPBitstreamFeatures f = webp_features(src, max_pixels);
  // The demuxer checks the RIFF container more strictly than WebPDecode (chunk sizes and order).
  const WebPData data{src.data, src.size};
  WebPDemuxState state = WEBP_DEMUX_PARSE_ERROR;
  std::unique_ptr<WebPDemuxer, WebPDemuxDeleter> demux(WebPDemuxPartial(&data, &state));
  if (!demux || state != WEBP_DEMUX_DONE) {
    if (state == WEBP_DEMUX_PARSING_HEADER || state == WEBP_DEMUX_PARSED_HEADER) fail_truncated(src);
    fail_damaged(src, "the RIFF container does not hold a valid sequence of WebP chunks");
  }
  if (f.has_animation) return decode_animated_webp(src, f);
  // The frame as the demuxer delimits it, which is what PIL's decoder decodes: WebPDecode on the
  // whole file would let a damaged lossless stream read on past the end of its chunk.
  WebPIterator frame;
  if (!WebPDemuxGetFrame(demux.get(), 1, &frame)) fail_damaged(src, "no frame");
  const WebPData fragment = frame.fragment;
  const bool same_size = frame.width == f.width && frame.height == f.height && frame.x_offset == 0 &&
                         frame.y_offset == 0;
  WebPDemuxReleaseIterator(&frame);
  if (!same_size) fail_damaged(src, "the image does not fill its canvas");

  DecodedImage out = new_image(src, f.width, f.height, f.has_alpha ? 4 : 3);
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) fail_image(src, "libwebp could not start");
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = out.pixels.data();
  config.output.u.RGBA.stride = out.width * 3;
  config.output.u.RGBA.size = out.pixels.size();
  const VP8StatusCode status = WebPDecode(fragment.bytes, fragment.size, &config);
  WebPFreeDecBuffer(&config.output);
  // The container is whole (the demuxer said so): data missing inside it is damage, not truncation.
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail_damaged(src, "the image data ends before the image");
  if (status == VP8_STATUS_UNSUPPORTED_FEATURE) fail_unsupported(src, "a WebP with features libwebp cannot read");
  if (status != VP8_STATUS_OK) fail_damaged(src, "libwebp status {}", static_cast<int>(status));
  return out;
}

// ---------------------------------------------------------------------------------------------
// GIF (giflib), the first frame as PIL 9.4 shows it: the canvas is the logical screen, enlarged to
// hold the frame when the frame reaches past it; outside the frame it holds the frame's transparent
// index when a graphic control extension sets one, else index 0; indices map through the frame's
// local colour table, else the global one, else gray (i, i, i), and past the table's end to gray
// (i, i, i). Transparency is not blended: the transparent index shows its palette colour.

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

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// PNM: P1-P6, read as PIL 9.4's PpmImagePlugin reads them. Header tokens are separated by
// whitespace; '#' starts a comment up to the next CR or LF, anywhere, without ending a token; one
// whitespace byte ends the header. Samples scale as PIL scales them: v -> round(v / maxval * 255)
// (round half to even, min 255), except that gray files with maxval > 255 become PIL's 32-bit mode
// "I" scaled to 0..65535, whose conversion to RGB clips at 255 (so, as in PIL, they come out nearly
// white). P1 and P4 are bitmaps: 1 is black. Plain (ASCII) data stops being read once every sample
// is in; PIL also checks the rest of its 1 MiB read block, so a plain file with junk after its
// samples is read here but refused by PIL.

bool pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

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

// ---------------------------------------------------------------------------------------------
// Reading files.

std::vector<uint8_t> read_whole_file(const std::string& path, int64_t max_bytes, const char* what) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) fail("cannot read {} {}: the file does not exist", what, path);
    if (e == EACCES || e == EPERM) fail("cannot read {} {}: permission denied (check the file's permissions)", what, path);
    fail("cannot read {} {}: {}", what, path, std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("cannot read {} {}: it is a folder, not a file", what, path);
  if (!S_ISREG(st.st_mode))
    fail("cannot read {} {}: it is not a regular file (a FIFO, socket or device); only regular files are read",
         what, path);
  if (st.st_size > max_bytes)
    fail("cannot read {} {}: the file is {} bytes, above the limit of {} bytes", what, path,
         static_cast<int64_t>(st.st_size), max_bytes);
  // Back to blocking reads (a regular file never blocks, but be plain about it).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
    if (n == 0) break;  // the file shrank while being read
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
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

std::vector<uint8_t> read_file_bytes(const std::string& path, int64_t max_bytes) {
  return read_whole_file(path, max_bytes, "file");
}

DecodedImage decode_image_file(const std::string& path, int64_t max_pixels) {
  const std::vector<uint8_t> bytes = read_whole_file(path, int64_t{1} << 30, "image");
  return decode_image(bytes.data(), bytes.size(), path, max_pixels);
}

}  // namespace birdplane::data
