#include "train/speedrun_kernels.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>

#include "birdplane/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BIRDPLANE_K __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define BIRDPLANE_KI __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline
#include "train/avx512_math.h"
#endif

namespace birdplane::train::speedrun_kernels {

bool available() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

#if defined(__x86_64__)
namespace {

constexpr int64_t kRowChunk = 256;  // rows per partial sum (fixed: results independent of threads)
constexpr int64_t kMaxC = 1024;

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

template <bool BF>
BIRDPLANE_KI __m512 load(const void* p, int64_t i, __mmask16 m) {
  if constexpr (BF) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  }
}

template <bool BF>
BIRDPLANE_KI void store(void* p, int64_t i, __m512 v, __mmask16 m) {
  if constexpr (BF) {
    __m512i b = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    b = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    _mm256_mask_storeu_epi16(static_cast<uint16_t*>(p) + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(b, 16)));
  } else {
    _mm512_mask_storeu_ps(static_cast<float*>(p) + i, m, v);
  }
}

// Phi(z) = (1 + erf(z / sqrt 2)) / 2 and the standard normal density phi(z), from one exp.
BIRDPLANE_KI void normal_cdf_pdf(__m512 z, __m512& cdf, __m512& pdf) {
  const __m512 x = _mm512_mul_ps(_mm512_abs_ps(z), _mm512_set1_ps(0.70710678118654752f));
  const __m512 e = kernels::exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), x));  // exp(-z^2 / 2)
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), x,
                                                                       _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 erf_abs = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), e, _mm512_set1_ps(1.0f));  // erf(|x|)
  const __mmask16 negative = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 erf = _mm512_mask_sub_ps(erf_abs, negative, _mm512_setzero_ps(), erf_abs);
  cdf = _mm512_mul_ps(_mm512_add_ps(erf, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.5f));
  pdf = _mm512_mul_ps(e, _mm512_set1_ps(0.39894228040143268f));
}

BIRDPLANE_KI __m512 gelu16(__m512 z) {
  __m512 cdf, pdf;
  normal_cdf_pdf(z, cdf, pdf);
  return _mm512_mul_ps(z, cdf);
}

BIRDPLANE_KI __m512 gelu_grad16(__m512 z) {
  __m512 cdf, pdf;
  normal_cdf_pdf(z, cdf, pdf);
  return _mm512_fmadd_ps(z, pdf, cdf);
}

// Sums over row chunks: body(chunk_begin, chunk_end, float* a, float* b) adds each chunk's per-channel
// values into a (and b); the chunks' sums are added in order in double.
template <typename Body>
void chunked_sums(int64_t rows, int64_t C, int64_t chunk, double* out_a, double* out_b, Body body) {
  const int64_t chunks = (rows + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(chunks * C * 2));
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    alignas(64) float a[kMaxC], b[kMaxC];
    for (int64_t c = c0; c < c1; ++c) {
      std::fill(a, a + C, 0.0f);
      std::fill(b, b + C, 0.0f);
      body(c * chunk, std::min(rows, (c + 1) * chunk), a, b);
      double* p = partial.data() + c * C * 2;
      for (int64_t k = 0; k < C; ++k) {
        p[k] = a[k];
        p[C + k] = b[k];
      }
    }
  });
  for (int64_t k = 0; k < C; ++k) {
    double sa = 0, sb = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      sa += partial[static_cast<size_t>(c * C * 2 + k)];
      sb += partial[static_cast<size_t>(c * C * 2 + C + k)];
    }
    out_a[k] = sa;
    if (out_b) out_b[k] = sb;
  }
}

template <bool BF>
BIRDPLANE_K void stats_rows(const void* x, int64_t r0, int64_t r1, int64_t C, const float* origin, float* sum,
                            float* sumsq) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 v = _mm512_sub_ps(load<BF>(x, r * C + k, m), _mm512_maskz_loadu_ps(m, origin + k));
      _mm512_mask_storeu_ps(sum + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, sum + k), v));
      _mm512_mask_storeu_ps(sumsq + k, m, _mm512_fmadd_ps(v, v, _mm512_maskz_loadu_ps(m, sumsq + k)));
    }
}

// Pooled pixels p0..p1 (flat over B x PH x PW) of y [B,H,W,C].
template <bool BF>
BIRDPLANE_K void pool_rows(const void* y, int64_t H, int64_t W, int64_t C, int64_t p0, int64_t p1, void* pooled,
                           uint8_t* where, const float* origin, float* sum, float* sumsq) {
  const int64_t PH = H / 2, PW = W / 2;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / (PH * PW), py = (p / PW) % PH, px = p % PW;
    const int64_t base = ((b * H + 2 * py) * W + 2 * px) * C;
    const int64_t offs[4] = {0, C, W * C, W * C + C};
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      __m512 best = load<BF>(y, base + k, m);
      __m512i at = _mm512_setzero_si512();
      for (int q = 1; q < 4; ++q) {
        const __m512 v = load<BF>(y, base + offs[q] + k, m);
        const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, gt, v);
        at = _mm512_mask_mov_epi32(at, gt, _mm512_set1_epi32(q));
      }
      store<BF>(pooled, p * C + k, best, m);
      _mm_mask_storeu_epi8(where + p * C + k, m, _mm512_cvtepi32_epi8(at));
      const __m512 v = _mm512_sub_ps(best, _mm512_maskz_loadu_ps(m, origin + k));
      _mm512_mask_storeu_ps(sum + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, sum + k), v));
      _mm512_mask_storeu_ps(sumsq + k, m, _mm512_fmadd_ps(v, v, _mm512_maskz_loadu_ps(m, sumsq + k)));
    }
  }
}

template <bool BF>
BIRDPLANE_K void pool_norm_gelu_rows(const void* y, int64_t H, int64_t W, int64_t C, int64_t p0, int64_t p1,
                                     const float* mean, const float* invstd, const float* shift, void* out) {
  const int64_t PH = H / 2, PW = W / 2;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / (PH * PW), py = (p / PW) % PH, px = p % PW;
    const int64_t base = ((b * H + 2 * py) * W + 2 * px) * C;
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 top = _mm512_max_ps(load<BF>(y, base + k, m), load<BF>(y, base + C + k, m));
      const __m512 bottom = _mm512_max_ps(load<BF>(y, base + W * C + k, m), load<BF>(y, base + W * C + C + k, m));
      const __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_max_ps(top, bottom), _mm512_maskz_loadu_ps(m, mean + k)),
                                       _mm512_maskz_loadu_ps(m, invstd + k), _mm512_maskz_loadu_ps(m, shift + k));
      store<BF>(out, p * C + k, gelu16(z), m);
    }
  }
}

template <bool BF>
BIRDPLANE_K void norm_gelu_rows(const void* x, int64_t r0, int64_t r1, int64_t C, const float* mean,
                                const float* invstd, const float* shift, void* out) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 v = load<BF>(x, r * C + k, m);
      const __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, mean + k)),
                                       _mm512_maskz_loadu_ps(m, invstd + k), _mm512_maskz_loadu_ps(m, shift + k));
      store<BF>(out, r * C + k, gelu16(z), m);
    }
}

template <bool BF>
BIRDPLANE_K void backward_sums_rows(const void* dout, const void* x, int64_t r0, int64_t r1, int64_t C,
                                    const float* mean, const float* invstd, const float* shift, float* sdz,
                                    float* sdzx) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(load<BF>(x, r * C + k, m), _mm512_maskz_loadu_ps(m, mean + k)),
                                        _mm512_maskz_loadu_ps(m, invstd + k));
      const __m512 dz = _mm512_mul_ps(load<BF>(dout, r * C + k, m),
                                      gelu_grad16(_mm512_add_ps(xhat, _mm512_maskz_loadu_ps(m, shift + k))));
      _mm512_mask_storeu_ps(sdz + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, sdz + k), dz));
      _mm512_mask_storeu_ps(sdzx + k, m, _mm512_fmadd_ps(dz, xhat, _mm512_maskz_loadu_ps(m, sdzx + k)));
    }
}

template <bool BF>
BIRDPLANE_K void backward_apply_rows(const void* dout, const void* x, int64_t r0, int64_t r1, int64_t C,
                                     const float* mean, const float* invstd, const float* shift, const float* a,
                                     const float* b, void* dx, const uint8_t* where, int64_t H, int64_t W) {
  const int64_t PH = H / 2, PW = W / 2;
  for (int64_t r = r0; r < r1; ++r) {
    int64_t base = 0;
    if (where) {
      const int64_t bi = r / (PH * PW), py = (r / PW) % PH, px = r % PW;
      base = ((bi * H + 2 * py) * W + 2 * px) * C;
    }
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 is = _mm512_maskz_loadu_ps(m, invstd + k);
      const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(load<BF>(x, r * C + k, m), _mm512_maskz_loadu_ps(m, mean + k)), is);
      const __m512 dz = _mm512_mul_ps(load<BF>(dout, r * C + k, m),
                                      gelu_grad16(_mm512_add_ps(xhat, _mm512_maskz_loadu_ps(m, shift + k))));
      // a = mean of dz, b = mean of dz * xhat (per channel)
      const __m512 g = _mm512_mul_ps(
          is, _mm512_sub_ps(_mm512_sub_ps(dz, _mm512_maskz_loadu_ps(m, a + k)),
                            _mm512_mul_ps(xhat, _mm512_maskz_loadu_ps(m, b + k))));
      if (!where) {
        store<BF>(dx, r * C + k, g, m);
      } else {
        const __m128i w8 = _mm_maskz_loadu_epi8(m, where + r * C + k);
        const __m512i w = _mm512_cvtepu8_epi32(w8);
        const int64_t offs[4] = {0, C, W * C, W * C + C};
        for (int q = 0; q < 4; ++q) {
          const __mmask16 hit = _mm512_mask_cmpeq_epi32_mask(m, w, _mm512_set1_epi32(q));
          store<BF>(dx, base + offs[q] + k, _mm512_maskz_mov_ps(hit, g), m);
        }
      }
    }
  }
}

template <bool BF>
BIRDPLANE_K void gelu_range(const void* x, int64_t i0, int64_t i1, void* out) {
  for (int64_t i = i0; i < i1; i += 16) {
    const __mmask16 m = lanes(i1 - i);
    store<BF>(out, i, gelu16(load<BF>(x, i, m)), m);
  }
}

template <bool BF>
BIRDPLANE_K void gelu_backward_rows(const void* dout, const void* z, int64_t r0, int64_t r1, int64_t C, float* s) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < C; k += 16) {
      const __mmask16 m = lanes(C - k);
      const __m512 d = _mm512_mul_ps(load<BF>(dout, r * C + k, m), gelu_grad16(load<BF>(z, r * C + k, m)));
      _mm512_mask_storeu_ps(s + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + k), d));
    }
}

void check(int64_t C) {
  BIRDPLANE_CHECK(available(), "the speedrun's fused step needs AVX-512 (F, BW, VL)");
  BIRDPLANE_CHECK(C >= 1 && C <= kMaxC, "speedrun kernels: {} channels (at most {})", C, kMaxC);
}

}  // namespace

// A value of each channel (its first row's): sums are taken of the differences from it, so that a mean
// far from zero does not swallow the variance in float.
std::vector<float> first_row(const void* x, bool bf16, int64_t C) {
  std::vector<float> o(static_cast<size_t>(C));
  for (int64_t k = 0; k < C; ++k) {
    if (bf16) {
      const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(x)[k]) << 16;
      std::memcpy(&o[k], &bits, 4);
    } else {
      o[k] = static_cast<const float*>(x)[k];
    }
  }
  return o;
}

// The batch mean and (biased) variance from the sums of the differences from `origin`, in place.
void mean_variance(double* sum_mean, double* sumsq_var, const std::vector<float>& origin, int64_t rows, int64_t C) {
  const double n = static_cast<double>(rows);
  for (int64_t k = 0; k < C; ++k) {
    const double d = sum_mean[k] / n;  // mean - origin
    sumsq_var[k] = std::max(0.0, sumsq_var[k] / n - d * d);
    sum_mean[k] = origin[k] + d;
  }
}

void channel_stats(const void* x, bool bf16, int64_t rows, int64_t C, double* mean, double* var) {
  check(C);
  const auto origin = first_row(x, bf16, C);
  chunked_sums(rows, C, kRowChunk, mean, var, [&](int64_t r0, int64_t r1, float* a, float* b) {
    bf16 ? stats_rows<true>(x, r0, r1, C, origin.data(), a, b) : stats_rows<false>(x, r0, r1, C, origin.data(), a, b);
  });
  mean_variance(mean, var, origin, rows, C);
}

void pool2_stats(const void* y, bool bf16, int64_t B, int64_t H, int64_t W, int64_t C, void* pooled, uint8_t* where,
                 double* mean, double* var) {
  check(C);
  const int64_t rows = B * (H / 2) * (W / 2);
  const auto origin = first_row(y, bf16, C);  // a value of the first window: near the pooled values
  chunked_sums(rows, C, kRowChunk, mean, var, [&](int64_t r0, int64_t r1, float* a, float* b) {
    bf16 ? pool_rows<true>(y, H, W, C, r0, r1, pooled, where, origin.data(), a, b)
         : pool_rows<false>(y, H, W, C, r0, r1, pooled, where, origin.data(), a, b);
  });
  mean_variance(mean, var, origin, rows, C);
}

void pool2_norm_gelu(const void* y, bool bf16, int64_t B, int64_t H, int64_t W, int64_t C, const float* mean,
                     const float* invstd, const float* shift, void* out) {
  check(C);
  at::parallel_for(0, B * (H / 2) * (W / 2), kRowChunk / 4, [&](int64_t p0, int64_t p1) {
    bf16 ? pool_norm_gelu_rows<true>(y, H, W, C, p0, p1, mean, invstd, shift, out)
         : pool_norm_gelu_rows<false>(y, H, W, C, p0, p1, mean, invstd, shift, out);
  });
}

void norm_gelu(const void* x, bool bf16, int64_t rows, int64_t C, const float* mean, const float* invstd,
               const float* shift, void* out) {
  check(C);
  at::parallel_for(0, rows, kRowChunk, [&](int64_t r0, int64_t r1) {
    bf16 ? norm_gelu_rows<true>(x, r0, r1, C, mean, invstd, shift, out)
         : norm_gelu_rows<false>(x, r0, r1, C, mean, invstd, shift, out);
  });
}

void norm_gelu_backward_sums(const void* dout, const void* x, bool bf16, int64_t rows, int64_t C, const float* mean,
                             const float* invstd, const float* shift, double* sum_dz, double* sum_dz_xhat) {
  check(C);
  chunked_sums(rows, C, kRowChunk, sum_dz, sum_dz_xhat, [&](int64_t r0, int64_t r1, float* a, float* b) {
    bf16 ? backward_sums_rows<true>(dout, x, r0, r1, C, mean, invstd, shift, a, b)
         : backward_sums_rows<false>(dout, x, r0, r1, C, mean, invstd, shift, a, b);
  });
}

void norm_gelu_backward_apply(const void* dout, const void* x, bool bf16, int64_t rows, int64_t C, const float* mean,
                              const float* invstd, const float* shift, const double* sum_dz,
                              const double* sum_dz_xhat, void* dx, const uint8_t* where, int64_t B, int64_t H,
                              int64_t W) {
  check(C);
  std::vector<float> a(static_cast<size_t>(C)), b(static_cast<size_t>(C));
  for (int64_t k = 0; k < C; ++k) {
    a[k] = static_cast<float>(sum_dz[k] / static_cast<double>(rows));
    b[k] = static_cast<float>(sum_dz_xhat[k] / static_cast<double>(rows));
  }
  if (where && (H % 2 || W % 2)) {
    // The last odd row or column feeds no pooled output: its gradient is zero.
    at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
      const size_t elem = bf16 ? 2 : 4;
      char* base = static_cast<char*>(dx);
      for (int64_t bi = b0; bi < b1; ++bi) {
        if (H % 2) std::fill_n(base + ((bi * H + H - 1) * W * C) * elem, W * C * elem, 0);
        if (W % 2)
          for (int64_t y = 0; y < H; ++y) std::fill_n(base + (((bi * H + y) * W + W - 1) * C) * elem, C * elem, 0);
      }
    });
  }
  at::parallel_for(0, rows, kRowChunk, [&](int64_t r0, int64_t r1) {
    bf16 ? backward_apply_rows<true>(dout, x, r0, r1, C, mean, invstd, shift, a.data(), b.data(), dx, where, H, W)
         : backward_apply_rows<false>(dout, x, r0, r1, C, mean, invstd, shift, a.data(), b.data(), dx, where, H, W);
  });
}

void gelu(const void* x, bool bf16, int64_t n, void* out) {
  BIRDPLANE_CHECK(available(), "the speedrun's fused step needs AVX-512 (F, BW, VL)");
  at::parallel_for(0, (n + 15) / 16, 1024, [&](int64_t v0, int64_t v1) {
    const int64_t i0 = v0 * 16, i1 = std::min(n, v1 * 16);
    bf16 ? gelu_range<true>(x, i0, i1, out) : gelu_range<false>(x, i0, i1, out);
  });
}

void gelu_backward_sum(const void* dout, const void* z, bool bf16, int64_t rows, int64_t C, double* sum) {
  check(C);
  chunked_sums(rows, C, kRowChunk, sum, nullptr, [&](int64_t r0, int64_t r1, float* a, float*) {
    bf16 ? gelu_backward_rows<true>(dout, z, r0, r1, C, a) : gelu_backward_rows<false>(dout, z, r0, r1, C, a);
  });
}

#else
void channel_stats(const void*, bool, int64_t, int64_t, double*, double*) { fail("no AVX-512 on this platform"); }
void pool2_stats(const void*, bool, int64_t, int64_t, int64_t, int64_t, void*, uint8_t*, double*, double*) {
  fail("no AVX-512 on this platform");
}
void pool2_norm_gelu(const void*, bool, int64_t, int64_t, int64_t, int64_t, const float*, const float*, const float*,
                     void*) {
  fail("no AVX-512 on this platform");
}
void norm_gelu(const void*, bool, int64_t, int64_t, const float*, const float*, const float*, void*) {
  fail("no AVX-512 on this platform");
}
void norm_gelu_backward_sums(const void*, const void*, bool, int64_t, int64_t, const float*, const float*,
                             const float*, double*, double*) {
  fail("no AVX-512 on this platform");
}
void norm_gelu_backward_apply(const void*, const void*, bool, int64_t, int64_t, const float*, const float*,
                              const float*, const double*, const double*, void*, const uint8_t*, int64_t, int64_t,
                              int64_t) {
  fail("no AVX-512 on this platform");
}
void gelu(const void*, bool, int64_t, void*) { fail("no AVX-512 on this platform"); }
void gelu_backward_sum(const void*, const void*, bool, int64_t, int64_t, double*) {
  fail("no AVX-512 on this platform");
}
#endif

}  // namespace birdplane::train::speedrun_kernels
