// JPEG (libjpeg-turbo). PIL decodes with libjpeg's defaults too (islow DCT, fancy upsampling). Gray
// files are decoded straight to RGB (libjpeg replicates, as PIL's L -> RGB does). CMYK and YCCK
// files (4 components) are read as PIL reads them: libjpeg's CMYK output, inverted as PIL's
// "CMYK;I" raw mode assumes (Adobe's convention), then PIL's CMYK -> RGB formula
// R = K' - round(C' * K' / 255) with PIL's integer rounding (C' = 255 - C, K' = K), verified for all
// 65536 (C, K) pairs against PIL. (libjpeg turns YCCK into CMYK for both; PIL writes no YCCK files,
// so the tests hold CMYK ones only.)
#include "data/decode/decoders.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

// clang-format off
#include <jpeglib.h>  // after <cstdio>: it needs FILE and size_t
#include <jerror.h>
// clang-format on

namespace birdplane::data::decode {
namespace {

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

}  // namespace

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

}  // namespace birdplane::data::decode
