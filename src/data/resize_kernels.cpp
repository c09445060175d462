// Built with -ffp-contract=off (CMakeLists.txt): a separate multiply and add must stay two roundings,
// and the fused steps are written as FMA intrinsics.
#include "data/resize_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "birdplane/check.h"

#if defined(__x86_64__)
// GCC 12's inline forms of the lane-extracting intrinsics start from _mm_undefined_ps() and draw a
// false "may be used uninitialized" warning; it is silenced for the intrinsics' header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define BIRDPLANE_FMA __attribute__((target("avx2,fma")))
#define BIRDPLANE_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define BIRDPLANE_AVX512_INLINE __attribute__((target("avx512f,avx2,fma"), always_inline)) inline
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

// The same sums without a branch that depends on the tap count: every output runs `taps` taps (the
// most any output has), tap j as acc = fma(t, fused[j], acc + t * plain[j]), where one of the two
// weights is the real one and the other 0 (both 0 beyond the output's count). Adding t * 0, or a
// fused multiply-add of t * 0, leaves acc exactly as it was, so this is the same arithmetic.
struct SplitTaps {
  int64_t taps = 0;
  std::vector<float> first, plain, fused;  // first[o]; plain/fused[o * taps + j] for j >= 1
  // When every output switches from plain to fused at the same tap (as when the tap counts differ by
  // less than four), that tap; the loop then needs no zero products: 0 otherwise.
  int64_t shared_plain_end = 0;
};

void split_taps(const Axis& a, int64_t out, SplitTaps& s) {
  s.taps = 1;
  for (int64_t o = 0; o < out; ++o) s.taps = std::max(s.taps, a.count[static_cast<size_t>(o)]);
  s.first.assign(static_cast<size_t>(out), 0.0f);
  s.plain.assign(static_cast<size_t>(out * s.taps), 0.0f);
  s.fused.assign(static_cast<size_t>(out * s.taps), 0.0f);
  s.shared_plain_end = plain_end(a.count[0]);
  for (int64_t o = 0; o < out; ++o) {
    const float* w = &a.w[static_cast<size_t>(o * a.taps)];
    const int64_t n = a.count[static_cast<size_t>(o)], p = plain_end(n);
    if (p != s.shared_plain_end) s.shared_plain_end = 0;
    s.first[static_cast<size_t>(o)] = w[0];
    for (int64_t j = 1; j < n; ++j) (j < p ? s.plain : s.fused)[static_cast<size_t>(o * s.taps + j)] = w[j];
  }
}

// Row r's three results (lanes 4r..4r+2) to out + r * stride, for the rows that exist; each store's
// fourth float lands on the next output's first, which is written after it.
BIRDPLANE_AVX512_INLINE void store_rows(float* out, int64_t stride, int64_t rows, __m512 acc) {
  _mm_storeu_ps(out, _mm512_extractf32x4_ps(acc, 0));
  if (rows > 1) _mm_storeu_ps(out + stride, _mm512_extractf32x4_ps(acc, 1));
  if (rows > 2) _mm_storeu_ps(out + 2 * stride, _mm512_extractf32x4_ps(acc, 2));
  if (rows > 3) _mm_storeu_ps(out + 3 * stride, _mm512_extractf32x4_ps(acc, 3));
}

// Along the rows, four rows at a time: `group` holds pixel x of the four rows as one 16-float vector
// (row r's red, green and blue in lanes 4r..4r+2), so each tap is one load for twelve outputs. Pixels
// past the right edge are zeros (the last outputs may run taps beyond their count there).
BIRDPLANE_AVX512 void resize_rows4(const uint8_t* src, int64_t h, int64_t w, const Axis& ax, const SplitTaps& st,
                                   int64_t out_w, float* tmp, int64_t stride, float* group) {
  const int64_t row_len = w * 3, taps = st.taps;
  std::fill(group + w * 16, group + (w + taps) * 16, 0.0f);
  for (int64_t y0 = 0; y0 < h; y0 += 4) {
    const int64_t rows = std::min<int64_t>(4, h - y0);
    // Straight from the bytes: pixel x's four bytes (its three and the next pixel's red, in a lane
    // never stored), widened to floats. The last pixel of a row is read byte by byte (nothing may
    // follow it). Going through a float row instead stalled: its loads spanned two earlier stores.
    for (int64_t r = 0; r < 4; ++r) {
      if (r < rows) {
        const uint8_t* s = src + (y0 + r) * row_len;
        for (int64_t x = 0; x + 1 < w; ++x) {
          int32_t four;
          std::memcpy(&four, s + 3 * x, 4);
          _mm_storeu_ps(group + x * 16 + r * 4, _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four))));
        }
        const uint8_t* last = s + 3 * (w - 1);
        _mm_storeu_ps(group + (w - 1) * 16 + r * 4, _mm_setr_ps(last[0], last[1], last[2], 0.0f));
      } else {
        for (int64_t x = 0; x < w; ++x) _mm_storeu_ps(group + x * 16 + r * 4, _mm_setzero_ps());
      }
    }
    const int64_t shared = st.shared_plain_end;
    for (int64_t o = 0; o < out_w; ++o) {
      const float* base = group + ax.start[static_cast<size_t>(o)] * 16;
      const float* plain = &st.plain[static_cast<size_t>(o * taps)];
      const float* fused = &st.fused[static_cast<size_t>(o * taps)];
      __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(base), _mm512_set1_ps(st.first[static_cast<size_t>(o)]));
      if (shared > 0) {
        int64_t j = 1;
        for (; j < shared; ++j) acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(base + j * 16), _mm512_set1_ps(plain[j])));
        for (; j < taps; ++j) acc = _mm512_fmadd_ps(_mm512_loadu_ps(base + j * 16), _mm512_set1_ps(fused[j]), acc);
      } else {
        for (int64_t j = 1; j < taps; ++j) {
          const __m512 t = _mm512_loadu_ps(base + j * 16);
          acc = _mm512_fmadd_ps(t, _mm512_set1_ps(fused[j]), _mm512_add_ps(acc, _mm512_mul_ps(t, _mm512_set1_ps(plain[j]))));
        }
      }
      store_rows(tmp + y0 * stride + 3 * o, stride, rows, acc);
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
  SplitTaps split;
  std::vector<float> row, tmp, line, group;
};

template <typename Emit>
void resize_any(Path path, const uint8_t* src, int64_t h, int64_t w, int64_t out_h, int64_t out_w, Emit&& emit) {
  BIRDPLANE_CHECK(h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1, "resize: sizes must be at least 1, got {}x{} to {}x{}",
                  h, w, out_h, out_w);
  thread_local Scratch s;
  axis_weights(w, out_w, s.ax);
  axis_weights(h, out_h, s.ay);
  const int64_t stride = round_up(out_w * 3 + 1, 8);
  // resize, not assign: padding lanes need only hold finite numbers (they feed lanes never stored).
  s.tmp.resize(static_cast<size_t>(h * stride));
  s.line.resize(static_cast<size_t>(stride));
  if (path == Path::kAvx512) {
    split_taps(s.ax, out_w, s.split);
    s.group.resize(static_cast<size_t>((w + s.split.taps) * 16));
    resize_rows4(src, h, w, s.ax, s.split, out_w, s.tmp.data(), stride, s.group.data());
  } else {
    s.row.resize(static_cast<size_t>(w * 3 + 1));
    s.row[static_cast<size_t>(w * 3)] = 0.0f;
    resize_rows(src, h, w, s.ax, out_w, s.tmp.data(), stride, s.row.data());
  }
  resize_columns(s.tmp.data(), stride, s.ay, out_h, s.line.data(), emit);
}

// torch.round: half to even, then into 0..255.
// `line` holds at least round_up(out_w * 3, 8) floats (its padding lanes are finite).
BIRDPLANE_FMA void store_rounded(const float* line, int64_t out_w, int64_t plane, uint8_t* dst) {
  thread_local std::vector<int32_t> ints;
  const int64_t n = out_w * 3;
  ints.resize(static_cast<size_t>(round_up(n, 8)));
  const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
  for (int64_t k = 0; k < n; k += 8) {
    const __m256 v = _mm256_round_ps(_mm256_loadu_ps(line + k), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ints.data() + k),
                        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi)));
  }
  for (int64_t o = 0; o < out_w; ++o)
    for (int64_t c = 0; c < 3; ++c) dst[c * plane + o] = static_cast<uint8_t>(ints[static_cast<size_t>(o * 3 + c)]);
}

#endif

// ATen's own result for one image, float32 CHW.
at::Tensor aten_resize(const uint8_t* src, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  const at::Tensor chw = at::from_blob(const_cast<uint8_t*>(src), {h, w, 3}, at::kByte).permute({2, 0, 1});
  const c10::optional<double> none;
  return at::_upsample_bilinear2d_aa(chw.to(at::kFloat).unsqueeze(0), {out_h, out_w}, false, none, none).squeeze(0);
}

bool matches_aten(Path path) {
  if (!cpu_has(path)) return false;
  // Shrinking and enlarging, each axis on its own and both, long and short filters, one pixel.
  const int64_t shapes[][4] = {{224, 224, 64, 64}, {37, 53, 100, 21}, {5, 300, 17, 64},
                               {333, 127, 31, 250}, {1, 1, 3, 2},    {64, 48, 64, 17}};
  std::mt19937 rng(1234);
  for (const auto& s : shapes) {
    std::vector<uint8_t> img(static_cast<size_t>(s[0] * s[1] * 3));
    for (auto& v : img) v = static_cast<uint8_t>(rng() & 0xFF);
    at::Tensor mine = at::empty({3, s[2], s[3]}, at::kFloat);
    resize_rgb_float_on(path, img.data(), s[0], s[1], mine.data_ptr<float>(), s[2], s[3]);
    if (!at::equal(mine, aten_resize(img.data(), s[0], s[1], s[2], s[3]))) return false;
  }
  return true;
}

// The path this machine uses: the first that gives ATen's result.
std::optional<Path> chosen_path() {
  static const std::optional<Path> path = []() -> std::optional<Path> {
    for (Path p : {Path::kAvx512, Path::kAvx2})
      if (matches_aten(p)) return p;
    return std::nullopt;
  }();
  return path;
}

}  // namespace

bool cpu_has(Path path) {
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return path == Path::kAvx512 ? avx2 && __builtin_cpu_supports("avx512f") : avx2;
#else
  (void)path;
  return false;
#endif
}

bool resize_available() { return chosen_path().has_value(); }

void resize_rgb_float_on(Path path, const uint8_t* src, int64_t h, int64_t w, float* dst_chw, int64_t out_h,
                         int64_t out_w) {
  BIRDPLANE_CHECK(cpu_has(path), "resize_rgb_float_on: this CPU lacks the instructions of that path");
#if defined(__x86_64__)
  const int64_t plane = out_h * out_w;
  resize_any(path, src, h, w, out_h, out_w, [&](int64_t y, const float* line) {
    for (int64_t o = 0; o < out_w; ++o)
      for (int64_t c = 0; c < 3; ++c) dst_chw[c * plane + y * out_w + o] = line[o * 3 + c];
  });
#else
  (void)src, (void)h, (void)w, (void)dst_chw, (void)out_h, (void)out_w;
#endif
}

void resize_rgb_float(const uint8_t* src, int64_t h, int64_t w, float* dst_chw, int64_t out_h, int64_t out_w) {
  BIRDPLANE_CHECK(resize_available(), "resize_rgb_float: not available on this machine (use ATen)");
  resize_rgb_float_on(*chosen_path(), src, h, w, dst_chw, out_h, out_w);
}

void resize_rgb(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst_chw, int64_t out_h, int64_t out_w) {
  BIRDPLANE_CHECK(resize_available(), "resize_rgb: not available on this machine (use ATen)");
#if defined(__x86_64__)
  const int64_t plane = out_h * out_w;
  resize_any(*chosen_path(), src, h, w, out_h, out_w,
             [&](int64_t y, const float* line) { store_rounded(line, out_w, plane, dst_chw + y * out_w); });
#else
  (void)src, (void)h, (void)w, (void)dst_chw, (void)out_h, (void)out_w;
#endif
}

}  // namespace birdplane::data::kernels
