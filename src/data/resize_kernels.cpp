// Built with -ffp-contract=off (CMakeLists.txt): a separate multiply and add must stay two roundings,
// and the fused steps are written as FMA intrinsics.
#include "data/resize_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "birdplane/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BIRDPLANE_FMA __attribute__((target("avx2,fma")))
#endif

namespace birdplane::data::kernels {
namespace {

// One axis of the resize: for output i, `count[i]` input positions from `start[i]` with weights
// w[i * taps ...], computed with ATen's float32 arithmetic (the antialiased triangle filter, widened
// by the scale when shrinking, normalized to sum 1).
struct Axis {
  std::vector<int64_t> start, count;
  std::vector<float> w;
  int64_t taps = 0;
};

float triangle(float x) {
  if (x < 0.0f) x = -x;
  if (x < 1.0f) return static_cast<float>(1.0 - x);
  return 0.0f;
}

void axis_weights(int64_t in, int64_t out, Axis& a) {
  // The mix of float and double below is ATen's: float variables, double literals.
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? static_cast<float>(1.0 * scale) : 1.0f;
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / scale) : 1.0f;
  a.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.start.assign(static_cast<size_t>(out), 0);
  a.count.assign(static_cast<size_t>(out), 0);
  a.w.assign(static_cast<size_t>(out * a.taps), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const auto center = static_cast<float>(scale * (static_cast<double>(i) + 0.5));
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - lo;
    a.start[static_cast<size_t>(i)] = lo;
    a.count[static_cast<size_t>(i)] = n;
    float* w = &a.w[static_cast<size_t>(i * a.taps)];
    float total = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      w[j] = triangle(static_cast<float>((static_cast<float>(j + lo) - center + 0.5) * invscale));
      total += w[j];
    }
    if (total != 0.0f)
      for (int64_t j = 0; j < n; ++j) w[j] /= total;
  }
}

// Taps 1 .. plain_end-1 are added with a separate multiply and add, the rest fused (see the header).
inline int64_t plain_end(int64_t n) { return 1 + ((n - 1) / 4) * 4; }

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

#if defined(__x86_64__)

// Along each row: the three channels of a pixel in one 4-float vector (the fourth lane is the next
// pixel's red, computed and then overwritten). `tmp` rows are `stride` floats.
BIRDPLANE_FMA void resize_rows(const uint8_t* src, int64_t h, int64_t w, const Axis& ax, int64_t out_w, float* tmp,
                               int64_t stride, float* row) {
  const int64_t row_len = w * 3;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* s = src + y * row_len;
    for (int64_t k = 0; k < row_len; ++k) row[k] = static_cast<float>(s[k]);
    float* out = tmp + y * stride;
    for (int64_t o = 0; o < out_w; ++o) {
      const float* base = row + ax.start[static_cast<size_t>(o)] * 3;
      const float* wt = &ax.w[static_cast<size_t>(o * ax.taps)];
      const int64_t n = ax.count[static_cast<size_t>(o)], p = plain_end(n);
      __m128 acc = _mm_mul_ps(_mm_loadu_ps(base), _mm_set1_ps(wt[0]));
      int64_t j = 1;
      for (; j < p; ++j) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(base + 3 * j), _mm_set1_ps(wt[j])));
      for (; j < n; ++j) acc = _mm_fmadd_ps(_mm_loadu_ps(base + 3 * j), _mm_set1_ps(wt[j]), acc);
      _mm_storeu_ps(out + 3 * o, acc);
    }
  }
}

// Down the columns: output row y is a weighted sum of whole rows of `tmp`, eight floats at a time.
// `line` receives out_w * 3 floats (HWC order) per output row and is handed to `emit`.
template <typename Emit>
BIRDPLANE_FMA void resize_columns(const float* tmp, int64_t stride, const Axis& ay, int64_t out_h, float* line,
                                  Emit&& emit) {
  for (int64_t y = 0; y < out_h; ++y) {
    const float* base = tmp + ay.start[static_cast<size_t>(y)] * stride;
    const float* wt = &ay.w[static_cast<size_t>(y * ay.taps)];
    const int64_t n = ay.count[static_cast<size_t>(y)], p = plain_end(n);
    for (int64_t k = 0; k < stride; k += 8) {
      __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(base + k), _mm256_set1_ps(wt[0]));
      int64_t j = 1;
      for (; j < p; ++j)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(base + j * stride + k), _mm256_set1_ps(wt[j])));
      for (; j < n; ++j) acc = _mm256_fmadd_ps(_mm256_loadu_ps(base + j * stride + k), _mm256_set1_ps(wt[j]), acc);
      _mm256_storeu_ps(line + k, acc);
    }
    emit(y, line);
  }
}

struct Scratch {
  Axis ax, ay;
  std::vector<float> row, tmp, line;
};

template <typename Emit>
void resize_any(const uint8_t* src, int64_t h, int64_t w, int64_t out_h, int64_t out_w, Emit&& emit) {
  BIRDPLANE_CHECK(h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1, "resize: sizes must be at least 1, got {}x{} to {}x{}",
                  h, w, out_h, out_w);
  thread_local Scratch s;
  axis_weights(w, out_w, s.ax);
  axis_weights(h, out_h, s.ay);
  const int64_t stride = round_up(out_w * 3 + 1, 8);
  s.row.assign(static_cast<size_t>(w * 3 + 1), 0.0f);
  s.tmp.assign(static_cast<size_t>(h * stride), 0.0f);
  s.line.assign(static_cast<size_t>(stride), 0.0f);
  resize_rows(src, h, w, s.ax, out_w, s.tmp.data(), stride, s.row.data());
  resize_columns(s.tmp.data(), stride, s.ay, out_h, s.line.data(), emit);
}

// torch.round: half to even (the default rounding mode), then into 0..255.
BIRDPLANE_FMA void store_rounded(const float* line, int64_t out_w, int64_t plane, uint8_t* dst) {
  for (int64_t o = 0; o < out_w; ++o) {
    for (int64_t c = 0; c < 3; ++c) {
      const float v = std::nearbyint(line[o * 3 + c]);
      dst[c * plane + o] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
    }
  }
}

#endif

// ATen's own result for one image, float32 CHW.
at::Tensor aten_resize(const uint8_t* src, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  const at::Tensor chw = at::from_blob(const_cast<uint8_t*>(src), {h, w, 3}, at::kByte).permute({2, 0, 1});
  const c10::optional<double> none;
  return at::_upsample_bilinear2d_aa(chw.to(at::kFloat).unsqueeze(0), {out_h, out_w}, false, none, none).squeeze(0);
}

bool matches_aten() {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
  // Shrinking and enlarging, each axis on its own and both, long and short filters, one pixel.
  const int64_t shapes[][4] = {{224, 224, 64, 64}, {37, 53, 100, 21}, {5, 300, 17, 64},
                               {333, 127, 31, 250}, {1, 1, 3, 2},    {64, 48, 64, 17}};
  std::mt19937 rng(1234);
  for (const auto& s : shapes) {
    std::vector<uint8_t> img(static_cast<size_t>(s[0] * s[1] * 3));
    for (auto& v : img) v = static_cast<uint8_t>(rng() & 0xFF);
    at::Tensor mine = at::empty({3, s[2], s[3]}, at::kFloat);
    resize_rgb_float(img.data(), s[0], s[1], mine.data_ptr<float>(), s[2], s[3]);
    if (!at::equal(mine, aten_resize(img.data(), s[0], s[1], s[2], s[3]))) return false;
  }
  return true;
#else
  return false;
#endif
}

}  // namespace

bool resize_available() {
  static const bool ok = matches_aten();
  return ok;
}

void resize_rgb_float(const uint8_t* src, int64_t h, int64_t w, float* dst_chw, int64_t out_h, int64_t out_w) {
#if defined(__x86_64__)
  const int64_t plane = out_h * out_w;
  resize_any(src, h, w, out_h, out_w, [&](int64_t y, const float* line) {
    for (int64_t o = 0; o < out_w; ++o)
      for (int64_t c = 0; c < 3; ++c) dst_chw[c * plane + y * out_w + o] = line[o * 3 + c];
  });
#else
  (void)src, (void)h, (void)w, (void)dst_chw, (void)out_h, (void)out_w;
  fail("resize_rgb_float: not available on this CPU");
#endif
}

void resize_rgb(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst_chw, int64_t out_h, int64_t out_w) {
#if defined(__x86_64__)
  const int64_t plane = out_h * out_w;
  resize_any(src, h, w, out_h, out_w,
             [&](int64_t y, const float* line) { store_rounded(line, out_w, plane, dst_chw + y * out_w); });
#else
  (void)src, (void)h, (void)w, (void)dst_chw, (void)out_h, (void)out_w;
  fail("resize_rgb: not available on this CPU");
#endif
}

}  // namespace birdplane::data::kernels
