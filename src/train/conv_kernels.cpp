#include "train/conv_kernels.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>

#include "birdplane/check.h"
#include "train/linear_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BIRDPLANE_AVX512 __attribute__((target("avx512f")))
#define BIRDPLANE_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline
#include "train/avx512_math.h"
#endif

namespace birdplane::train::kernels {

namespace {

// Images per chunk of the weight gradient's partial sums (fixed, so the sums do not depend on the
// thread count).
constexpr int64_t kChunk = 4;

void check_shape(const ConvPoolShape& s, const char* what) {
  BIRDPLANE_CHECK(available(), "{}: this CPU has no AVX-512", what);
  BIRDPLANE_CHECK(s.batch >= 1 && s.in_h >= 2 && s.in_w >= 2 && s.in_c >= 1 && s.out_c >= 1, "{}: bad shape", what);
}

}  // namespace

#if defined(__x86_64__)
namespace {

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// The lanes of vector v of a run of nv vectors whose last one holds the lanes `last`.
inline __mmask16 run_lanes(int64_t v, int64_t nv, __mmask16 last) {
  return v == nv - 1 ? last : static_cast<__mmask16>(0xFFFF);
}

// In an image of the padded NHWC input (or its gradient): the top-left input under the 3x3 kernel
// of the convolution output at window position q (0..3, row-major) of pooled output (py, px).
template <typename T>
inline T* window_input(T* img, const ConvPoolShape& s, int64_t py, int64_t px, int q) {
  return img + (2 * py + (q >> 1)) * s.padded_row() + (2 * px + (q & 1)) * s.in_c;
}

// tanh: an odd polynomial below |x| = 0.625 (Cephes' tanhf coefficients), 1 - 2 / (exp(2|x|) + 1)
// with the sign of x above; NaN stays NaN.
BIRDPLANE_AVX512_INLINE __m512 tanh16(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
  const __m512 e = exp16(_mm512_add_ps(ax, ax));
  const __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                   _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 signed_big = _mm512_mask_sub_ps(big, negative, _mm512_setzero_ps(), big);
  const __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(_mm512_mask_mov_ps(signed_big, is_small, small), is_nan, x);
}

// P pooled pixels of one row, outputs ob..ob+15: four accumulators per pixel (the window's 2x2
// convolution outputs), each starting from the bias; each weight vector is loaded once for all 4P.
template <int P>
BIRDPLANE_AVX512_INLINE void forward_tile(const float* img, int64_t wp_stride, int64_t C, const float* w_packed,
                                          int64_t Op, int64_t ob, int64_t py, int64_t px, __m512 bias, __mmask16 lanes,
                                          float* out, int64_t out_pixel, uint8_t* where, int64_t O, bool tanh) {
  __m512 acc[P][4];
  _Pragma("GCC unroll 8") for (int p = 0; p < P; ++p)
    _Pragma("GCC unroll 4") for (int q = 0; q < 4; ++q) acc[p][q] = bias;
  for (int ky = 0; ky < 3; ++ky) {
    for (int kx = 0; kx < 3; ++kx) {
      const float* wk = w_packed + (ky * 3 + kx) * C * Op + ob;
      const float* r = img + ((2 * py + ky) * wp_stride + 2 * px + kx) * C;
      for (int64_t c = 0; c < C; ++c) {
        const __m512 w = _mm512_loadu_ps(wk + c * Op);
        _Pragma("GCC unroll 8") for (int p = 0; p < P; ++p)
          _Pragma("GCC unroll 2") for (int dy = 0; dy < 2; ++dy)
            _Pragma("GCC unroll 2") for (int dx = 0; dx < 2; ++dx)
              acc[p][dy * 2 + dx] =
                  _mm512_fmadd_ps(_mm512_set1_ps(r[(dy * wp_stride + 2 * p + dx) * C + c]), w, acc[p][dy * 2 + dx]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int p = 0; p < P; ++p) {
    __m512 best = acc[p][0];
    __m512i pos = _mm512_setzero_si512();
    _Pragma("GCC unroll 3") for (int q = 1; q < 4; ++q) {
      const __mmask16 take = _mm512_cmp_ps_mask(acc[p][q], best, _CMP_GT_OQ) |
                             _mm512_cmp_ps_mask(acc[p][q], acc[p][q], _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, take, acc[p][q]);
      pos = _mm512_mask_mov_epi32(pos, take, _mm512_set1_epi32(q));
    }
    _mm512_mask_storeu_ps(out + p * out_pixel + ob, lanes, tanh ? tanh16(best) : best);
    _mm512_mask_cvtepi32_storeu_epi8(where + p * O + ob, lanes, pos);  // the positions as bytes
  }
}

BIRDPLANE_AVX512 void forward_image(const float* in, const ConvPoolShape& s, const float* w_packed, const float* bias,
                                    const PooledLayout& out, uint8_t* where, bool tanh, int64_t b) {
  const int64_t C = s.in_c, wp_stride = s.in_w + 2, O = s.out_c, Op = s.out_c_padded();
  const int64_t ph = s.pooled_h(), pw = s.pooled_w();
  const float* img = in + b * s.padded_image();
  for (int64_t ob = 0; ob < O; ob += 16) {
    const __mmask16 lanes = first_lanes(O - ob);
    const __m512 bv = _mm512_maskz_loadu_ps(lanes, bias + ob);
    for (int64_t py = 0; py < ph; ++py) {
      float* orow = out.out + b * out.image + py * out.row;
      uint8_t* wrow = where + (b * ph + py) * pw * O;
      int64_t px = 0;
      for (; px + 4 <= pw; px += 4)
        forward_tile<4>(img, wp_stride, C, w_packed, Op, ob, py, px, bv, lanes, orow + px * out.pixel, out.pixel,
                        wrow + px * O, O, tanh);
      for (; px < pw; ++px)
        forward_tile<1>(img, wp_stride, C, w_packed, Op, ob, py, px, bv, lanes, orow + px * out.pixel, out.pixel,
                        wrow + px * O, O, tanh);
    }
  }
}

// The gradient of pooled output (b, y, x, o), through the tanh when g.act is set.
template <bool Act>
inline float pooled_grad(const PooledGrad& g, int64_t at) {
  const float d = g.grad[at];
  if constexpr (Act) {
    const float a = g.act[at];
    return d * (1.0f - a * a);
  }
  return d;
}

// Weight gradient of outputs o0..o0+OB over images [b0, b1), for the part of each row's 3*C-float
// run (kx, c) from `seg` on, NV vectors long (the last masked by `last`). The accumulators stay in
// registers for the whole pass; the result overwrites that part of dw.
template <bool Act, int OB, int NV>
BIRDPLANE_AVX512 void weight_grad_block(const float* in, const ConvPoolShape& s, const PooledGrad& g, const uint8_t* where,
                                        int64_t b0, int64_t b1, int64_t o0, int64_t seg, __mmask16 last, float* dw) {
  const int64_t O = s.out_c, run = 3 * s.in_c, row = s.padded_row();
  const int64_t ph = s.pooled_h(), pw = s.pooled_w();
  __m512 acc[OB][3][NV];
  _Pragma("GCC unroll 8") for (int i = 0; i < OB; ++i)
    _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ++ky)
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) acc[i][ky][v] = _mm512_setzero_ps();
  for (int64_t b = b0; b < b1; ++b) {
    const float* img = in + b * s.padded_image() + seg;
    for (int64_t py = 0; py < ph; ++py) {
      for (int64_t px = 0; px < pw; ++px) {
        const int64_t pix = ((b * ph + py) * pw + px) * O + o0;
        const int64_t gpix = b * g.image + py * g.row + px * g.pixel + o0;
        _Pragma("GCC unroll 8") for (int i = 0; i < OB; ++i) {
          const __m512 gv = _mm512_set1_ps(pooled_grad<Act>(g, gpix + i));
          const float* at = window_input(img, s, py, px, where[pix + i]);
          _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ++ky)
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) {
              const __m512 x = _mm512_maskz_loadu_ps(run_lanes(v, NV, last), at + ky * row + 16 * v);
              acc[i][ky][v] = _mm512_fmadd_ps(gv, x, acc[i][ky][v]);
            }
        }
      }
    }
  }
  _Pragma("GCC unroll 8") for (int i = 0; i < OB; ++i)
    _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ++ky)
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_ps(dw + ((o0 + i) * 3 + ky) * run + seg + 16 * v, run_lanes(v, NV, last), acc[i][ky][v]);
}

// All outputs for one segment of NV vectors: blocks of OB outputs (about 24 accumulators), then
// single outputs for the rest.
template <bool Act, int NV>
void weight_grad_segment(const float* in, const ConvPoolShape& s, const PooledGrad& g, const uint8_t* where,
                         int64_t b0, int64_t b1, int64_t seg, __mmask16 last, float* dw) {
  constexpr int OB = NV >= 8 ? 1 : 8 / NV;
  int64_t o = 0;
  for (; o + OB <= s.out_c; o += OB) weight_grad_block<Act, OB, NV>(in, s, g, where, b0, b1, o, seg, last, dw);
  for (; o < s.out_c; ++o) weight_grad_block<Act, 1, NV>(in, s, g, where, b0, b1, o, seg, last, dw);
}

template <bool Act>
void weight_grad_chunk(const float* in, const ConvPoolShape& s, const PooledGrad& g, const uint8_t* where, int64_t b0,
                       int64_t b1, float* dw, float* db) {
  const int64_t run = 3 * s.in_c;
  for (int64_t seg = 0; seg < run; seg += 128) {  // segments of at most 8 vectors
    const int64_t len = std::min<int64_t>(128, run - seg), nv = (len + 15) / 16;
    const __mmask16 last = first_lanes(len - 16 * (nv - 1));
    switch (nv) {
      case 1: weight_grad_segment<Act, 1>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 2: weight_grad_segment<Act, 2>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 3: weight_grad_segment<Act, 3>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 4: weight_grad_segment<Act, 4>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 5: weight_grad_segment<Act, 5>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 6: weight_grad_segment<Act, 6>(in, s, g, where, b0, b1, seg, last, dw); break;
      case 7: weight_grad_segment<Act, 7>(in, s, g, where, b0, b1, seg, last, dw); break;
      default: weight_grad_segment<Act, 8>(in, s, g, where, b0, b1, seg, last, dw); break;
    }
  }
  const int64_t O = s.out_c;
  std::fill(db, db + O, 0.0f);
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t py = 0; py < s.pooled_h(); ++py)
      for (int64_t px = 0; px < s.pooled_w(); ++px) {
        const int64_t at = b * g.image + py * g.row + px * g.pixel;
        for (int64_t o = 0; o < O; ++o) db[o] += pooled_grad<Act>(g, at + o);
      }
}

BIRDPLANE_AVX512 void input_grad_image(const float* g, const uint8_t* where, const ConvPoolShape& s,
                                       const float* w_back, float* din, int64_t b) {
  const int64_t O = s.out_c, run = 3 * s.in_c, row = s.padded_row();
  const int64_t ph = s.pooled_h(), pw = s.pooled_w(), nv = (run + 15) / 16;
  const __mmask16 last = first_lanes(run - 16 * (nv - 1));
  float* img = din + b * s.padded_image();
  for (int64_t py = 0; py < ph; ++py) {
    for (int64_t px = 0; px < pw; ++px) {
      const int64_t pix = ((b * ph + py) * pw + px) * O;
      for (int64_t o = 0; o < O; ++o) {
        const __m512 gv = _mm512_set1_ps(g[pix + o]);
        float* at = window_input(img, s, py, px, where[pix + o]);
        const float* wo = w_back + o * 3 * run;
        for (int ky = 0; ky < 3; ++ky) {
          for (int64_t v = 0; v < nv; ++v) {
            const __mmask16 m = run_lanes(v, nv, last);
            float* p = at + ky * row + 16 * v;
            const __m512 sum = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m, wo + ky * run + 16 * v),
                                               _mm512_maskz_loadu_ps(m, p));
            _mm512_mask_storeu_ps(p, m, sum);
          }
        }
      }
    }
  }
}

}  // namespace

void conv3x3_pool_forward(const float* in, const ConvPoolShape& s, const float* w_packed, const float* bias,
                          const PooledLayout& out, uint8_t* where, bool tanh) {
  check_shape(s, "conv3x3_pool_forward");
  at::parallel_for(0, s.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) forward_image(in, s, w_packed, bias, out, where, tanh, b);
  });
}

void conv3x3_pool_weight_grad(const float* in, const ConvPoolShape& s, const PooledGrad& g, const uint8_t* where,
                              float* dw, float* db) {
  check_shape(s, "conv3x3_pool_weight_grad");
  const int64_t chunks = (s.batch + kChunk - 1) / kChunk, wsize = s.out_c * 9 * s.in_c, O = s.out_c;
  std::vector<float> partial(static_cast<size_t>(chunks * (wsize + O)));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      float* part = partial.data() + c * (wsize + O);
      const int64_t b0 = c * kChunk, b1 = std::min(s.batch, (c + 1) * kChunk);
      if (g.act)
        weight_grad_chunk<true>(in, s, g, where, b0, b1, part, part + wsize);
      else
        weight_grad_chunk<false>(in, s, g, where, b0, b1, part, part + wsize);
    }
  });
  std::copy(partial.begin(), partial.begin() + wsize, dw);
  std::copy(partial.begin() + wsize, partial.begin() + wsize + O, db);
  for (int64_t c = 1; c < chunks; ++c) {
    const float* part = partial.data() + c * (wsize + O);
    for (int64_t i = 0; i < wsize; ++i) dw[i] += part[i];
    for (int64_t o = 0; o < O; ++o) db[o] += part[wsize + o];
  }
}

void conv3x3_pool_input_grad(const float* g, const uint8_t* where, const ConvPoolShape& s, const float* w_back,
                             float* din) {
  check_shape(s, "conv3x3_pool_input_grad");
  at::parallel_for(0, s.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) input_grad_image(g, where, s, w_back, din, b);
  });
}

namespace {
BIRDPLANE_AVX512 void tanh_range(float* x, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = first_lanes(end - i);
    _mm512_mask_storeu_ps(x + i, m, tanh16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
}  // namespace

void tanh_inplace(float* x, int64_t n) {
  BIRDPLANE_CHECK(available(), "tanh_inplace: this CPU has no AVX-512");
  at::parallel_for(0, (n + 15) / 16, 4096, [&](int64_t begin, int64_t end) {
    tanh_range(x, begin * 16, std::min(n, end * 16));
  });
}

#else

void conv3x3_pool_forward(const float*, const ConvPoolShape& s, const float*, const float*, const PooledLayout&,
                          uint8_t*, bool) {
  check_shape(s, "conv3x3_pool_forward");
}
void tanh_inplace(float*, int64_t) { BIRDPLANE_CHECK(available(), "tanh_inplace: this CPU has no AVX-512"); }
void conv3x3_pool_weight_grad(const float*, const ConvPoolShape& s, const PooledGrad&, const uint8_t*, float*, float*) {
  check_shape(s, "conv3x3_pool_weight_grad");
}
void conv3x3_pool_input_grad(const float*, const uint8_t*, const ConvPoolShape& s, const float*, float*) {
  check_shape(s, "conv3x3_pool_input_grad");
}

#endif

void nchw_to_padded_nhwc(const float* x, int64_t batch, int64_t c, int64_t h, int64_t w, float* out) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for (int64_t y = 0; y < h; ++y) {
        float* row = out + ((b * (h + 2) + y + 1) * (w + 2) + 1) * c;
        for (int64_t ch = 0; ch < c; ++ch) {
          const float* src = x + ((b * c + ch) * h + y) * w;
          for (int64_t i = 0; i < w; ++i) row[i * c + ch] = src[i];
        }
      }
  });
}

}  // namespace birdplane::train::kernels
