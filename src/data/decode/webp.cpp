// WebP (libwebp). PIL 9.4 reads every WebP through libwebp's demuxer and animation decoder, into
// RGBA. Here the demuxer checks the container the same way, and a still image's frame (the bytes the
// demuxer delimits, as the animation decoder would decode them) is decoded straight to RGB, alpha
// dropped without blending. The first frame of an animated file goes through the animation decoder
// itself, so canvas areas the frame leaves transparent read as black, as in PIL.
#include "data/decode/decoders.h"

#include <cstring>
#include <memory>

#include <webp/decode.h>
#include <webp/demux.h>

namespace birdplane::data::decode {
namespace {

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

}  // namespace

ImageHeader webp_header(const Source& src, int64_t max_pixels) {
  const WebPBitstreamFeatures f = webp_features(src, max_pixels);
  return {f.width, f.height, src.format};
}

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

}  // namespace birdplane::data::decode
