#include "train/linear_kernels.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "birdplane/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BIRDPLANE_AVX512 __attribute__((target("avx512f")))
#define BIRDPLANE_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline
#endif

namespace birdplane::train::kernels {

#if defined(__x86_64__)
namespace {

// The forward product runs over blocks of 64 inputs (k) and up to 64 images (b, four vectors of 16):
// x is first transposed block by block (each [k][b] block 16 KB, the blocks shared by the threads),
// and a block stays in L1 while every weight row of the thread's share passes it. Each weight
// element is broadcast against four image vectors, so no horizontal sums are needed, and the weight
// is read in its own [out, in] layout.
constexpr int64_t kKBlock = 64;
constexpr int64_t kImages = 64;

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// pack[kk * 64 + j] = x[(b0 + j) * K + k0 + kk] for kk < nk and j < nb; zero for nb <= j < 16 * ceil(nb / 16).
BIRDPLANE_AVX512 void pack_transposed(const float* x, int64_t K, int64_t b0, int64_t nb, int64_t k0, int64_t nk,
                                      float* pack) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(K)));
  for (int64_t v = 0; 16 * v < nb; ++v) {
    const __mmask16 m = first_lanes(nb - 16 * v);
    const float* base = x + (b0 + 16 * v) * K + k0;
    for (int64_t kk = 0; kk < nk; ++kk)
      _mm512_storeu_ps(pack + kk * kImages + 16 * v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows, base + kk, 4));
  }
}

// out_t rows o..o+RO, images b0.. (NV vectors, the last masked): starts from the bias on the first
// k block, from the partial sums in out_t after it.
template <int RO, int NV>
BIRDPLANE_AVX512_INLINE void forward_tile(const float* pack, const float* w, int64_t K, float* out_t, int64_t B,
                                          int64_t o, int64_t b0, int64_t k0, int64_t nk, __mmask16 last,
                                          const float* bias, bool first) {
  __m512 acc[RO][NV];
  _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i)
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
      acc[i][v] = first ? _mm512_set1_ps(bias ? bias[o + i] : 0.0f)
                        : _mm512_maskz_loadu_ps(m, out_t + (o + i) * B + b0 + 16 * v);
    }
  const float* wk = w + o * K + k0;
  for (int64_t kk = 0; kk < nk; ++kk) {
    __m512 xv[NV];
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) xv[v] = _mm512_loadu_ps(pack + kk * kImages + 16 * v);
    _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i) {
      const __m512 wv = _mm512_set1_ps(wk[i * K + kk]);
      _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(wv, xv[v], acc[i][v]);
    }
  }
  _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i)
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
      _mm512_mask_storeu_ps(out_t + (o + i) * B + b0 + 16 * v, m, acc[i][v]);
    }
}

template <int NV>
BIRDPLANE_AVX512 void forward_block(const float* pack, const float* w, int64_t K, float* out_t, int64_t B, int64_t o0,
                                    int64_t o1, int64_t b0, int64_t k0, int64_t nk, __mmask16 last, const float* bias,
                                    bool first) {
  constexpr int R = NV == 4 ? 6 : NV == 3 ? 8 : NV == 2 ? 12 : 16;  // about 24 accumulators of 32 registers
  int64_t o = o0;
  for (; o + R <= o1; o += R) forward_tile<R, NV>(pack, w, K, out_t, B, o, b0, k0, nk, last, bias, first);
  for (; o < o1; ++o) forward_tile<1, NV>(pack, w, K, out_t, B, o, b0, k0, nk, last, bias, first);
}

// Blocks of x transposed, for every image pass b and input block k: block (bi, ki) starts at
// (bi * blocks_k + ki) * kKBlock * kImages. Packed once per product, shared by the threads.
BIRDPLANE_AVX512 void pack_all(const float* x, int64_t B, int64_t K, float* packed) {
  const int64_t blocks_k = (K + kKBlock - 1) / kKBlock, blocks = (B + kImages - 1) / kImages * blocks_k;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t b0 = block / blocks_k * kImages, k0 = block % blocks_k * kKBlock;
      pack_transposed(x, K, b0, std::min(kImages, B - b0), k0, std::min(kKBlock, K - k0),
                      packed + block * kKBlock * kImages);
    }
  });
}

BIRDPLANE_AVX512 void forward_rows(const float* packed, const float* w, const float* bias, float* out_t, int64_t B,
                                   int64_t K, int64_t o0, int64_t o1) {
  const int64_t blocks_k = (K + kKBlock - 1) / kKBlock;
  for (int64_t b0 = 0; b0 < B; b0 += kImages) {
    const int64_t nb = std::min(kImages, B - b0);
    const int64_t nv = (nb + 15) / 16;
    const __mmask16 last = first_lanes(nb - 16 * (nv - 1));
    for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
      const int64_t nk = std::min(kKBlock, K - k0);
      const float* pack = packed + (b0 / kImages * blocks_k + k0 / kKBlock) * kKBlock * kImages;
      const bool first = k0 == 0;
      switch (nv) {
        case 4: forward_block<4>(pack, w, K, out_t, B, o0, o1, b0, k0, nk, last, bias, first); break;
        case 3: forward_block<3>(pack, w, K, out_t, B, o0, o1, b0, k0, nk, last, bias, first); break;
        case 2: forward_block<2>(pack, w, K, out_t, B, o0, o1, b0, k0, nk, last, bias, first); break;
        default: forward_block<1>(pack, w, K, out_t, B, o0, o1, b0, k0, nk, last, bias, first); break;
      }
    }
  }
}

// The update runs over columns of 64 inputs (V = 4 vectors; 16 or a masked tail at the end): the
// columns of x for every image are packed first (rows of x lie K floats apart, which would map them
// onto a few L1 sets), then each group of 6 weight rows gets sum_b g[b][o] x[b][k..k+64) added once.
template <int RO, int V, bool Masked>
BIRDPLANE_AVX512_INLINE void update_tile(float* w, int64_t K, const float* g, int64_t gsb, int64_t gso,
                                         const float* xp, __m512 scale, int64_t B, int64_t o, int64_t k,
                                         __mmask16 last) {
  __m512 acc[RO][V];
  _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i)
    _Pragma("GCC unroll 16") for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t b = 0; b < B; ++b) {
    __m512 xv[V];
    _Pragma("GCC unroll 16") for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_ps(xp + b * 16 * V + 16 * v);
    const float* gb = g + b * gsb + o * gso;
    _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i) {
      const __m512 gv = _mm512_set1_ps(gb[i * gso]);
      _Pragma("GCC unroll 16") for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(gv, xv[v], acc[i][v]);
    }
  }
  _Pragma("GCC unroll 16") for (int i = 0; i < RO; ++i) {
    float* wr = w + (o + i) * K + k;
    _Pragma("GCC unroll 16") for (int v = 0; v < V; ++v) {
      const __mmask16 m = Masked && v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      _mm512_mask_storeu_ps(wr + 16 * v, m, _mm512_fmadd_ps(acc[i][v], scale, _mm512_maskz_loadu_ps(m, wr + 16 * v)));
    }
  }
}

template <int V, bool Masked>
BIRDPLANE_AVX512 void update_columns(float* w, int64_t K, const float* g, int64_t gsb, int64_t gso, const float* x,
                                     float* xp, __m512 scale, int64_t B, int64_t o0, int64_t o1, int64_t k,
                                     __mmask16 last) {
  for (int64_t b = 0; b < B; ++b)
    _Pragma("GCC unroll 16") for (int v = 0; v < V; ++v) {
      const __mmask16 m = Masked && v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      _mm512_storeu_ps(xp + b * 16 * V + 16 * v, _mm512_maskz_loadu_ps(m, x + b * K + k + 16 * v));
    }
  int64_t o = o0;
  for (; o + 6 <= o1; o += 6) update_tile<6, V, Masked>(w, K, g, gsb, gso, xp, scale, B, o, k, last);
  for (; o < o1; ++o) update_tile<1, V, Masked>(w, K, g, gsb, gso, xp, scale, B, o, k, last);
}

BIRDPLANE_AVX512 void update_rows(float* w, const float* g, int64_t gsb, int64_t gso, const float* x, float scale,
                                  int64_t B, int64_t K, int64_t o0, int64_t o1) {
  const __m512 s = _mm512_set1_ps(scale);
  std::vector<float> pack(static_cast<size_t>(B) * 64);
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) update_columns<4, false>(w, K, g, gsb, gso, x, pack.data(), s, B, o0, o1, k, 0);
  for (; k + 16 <= K; k += 16) update_columns<1, false>(w, K, g, gsb, gso, x, pack.data(), s, B, o0, o1, k, 0);
  if (k < K) update_columns<1, true>(w, K, g, gsb, gso, x, pack.data(), s, B, o0, o1, k, first_lanes(K - k));
}

}  // namespace

bool available() { return __builtin_cpu_supports("avx512f"); }
#else
bool available() { return false; }
#endif

bool enabled() {
  const char* choice = std::getenv("BIRDPLANE_KERNELS");
  return !(choice && std::string(choice) == "blas") && available();
}

namespace {

std::string shape(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

void check_operands(const at::Tensor& x, const at::Tensor& w, const char* what) {
  BIRDPLANE_CHECK(available(), "{}: this CPU has no AVX-512", what);
  BIRDPLANE_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "{}: x {} and w {} do not fit", what,
                  shape(x), shape(w));
  BIRDPLANE_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && x.is_contiguous() &&
                      w.is_contiguous() && x.device().is_cpu() && w.device().is_cpu(),
                  "{}: x and w must be contiguous float32 CPU tensors", what);
  BIRDPLANE_CHECK(x.size(0) <= (int64_t{1} << 30) && x.size(1) < (int64_t{1} << 26), "{}: x {} is too large", what,
                  shape(x));
}

}  // namespace

at::Tensor linear_forward_t(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  check_operands(x, w, "linear_forward_t");
  const int64_t B = x.size(0), K = x.size(1), O = w.size(0);
  const bool has_bias = bias.defined();
  if (has_bias)
    BIRDPLANE_CHECK(bias.dim() == 1 && bias.size(0) == O && bias.scalar_type() == at::kFloat && bias.is_contiguous(),
                    "linear_forward_t: bias {} does not fit w {}", shape(bias), shape(w));
  auto out_t = at::empty({O, B}, x.options());
  if (K == 0) return has_bias ? out_t.copy_(bias.unsqueeze(1).expand({O, B})) : out_t.zero_();
#if defined(__x86_64__)
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = has_bias ? bias.data_ptr<float>() : nullptr;
  float* op = out_t.data_ptr<float>();
  auto packed = at::empty({(B + kImages - 1) / kImages * ((K + kKBlock - 1) / kKBlock) * kKBlock * kImages},
                          x.options());
  pack_all(xp, B, K, packed.data_ptr<float>());
  const float* pp = packed.data_ptr<float>();
  // The same split of the rows as linear_update_, so each thread updates the rows it read.
  at::parallel_for(0, O, 16, [&](int64_t o0, int64_t o1) { forward_rows(pp, wp, bp, op, B, K, o0, o1); });
#endif
  return out_t;
}

void linear_update_(at::Tensor& w, const at::Tensor& g, const at::Tensor& x, double scale) {
  check_operands(x, w, "linear_update_");
  const int64_t B = x.size(0), K = x.size(1), O = w.size(0);
  BIRDPLANE_CHECK(g.dim() == 2 && g.size(0) == B && g.size(1) == O && g.scalar_type() == at::kFloat && g.device().is_cpu(),
                  "linear_update_: g {} does not fit x {} and w {}", shape(g), shape(x), shape(w));
  if (B == 0 || K == 0) return;
#if defined(__x86_64__)
  float* wp = w.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float s = static_cast<float>(scale);
  at::parallel_for(0, O, 16, [&](int64_t o0, int64_t o1) {
    update_rows(wp, gp, g.stride(0), g.stride(1), xp, s, B, K, o0, o1);
  });
#endif
}

}  // namespace birdplane::train::kernels
