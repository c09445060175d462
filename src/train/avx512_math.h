// Vector math shared by birdplane's AVX-512 kernels (conv_kernels.cpp, speedrun_kernels.cpp). Include it
// after <immintrin.h> on x86-64 only; each function is force-inlined into its AVX-512 caller.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace birdplane::train::kernels {

// exp(x) for x in about [-87, 88]: x = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial for
// exp(r) (the coefficients of Cephes' expf), scaled by 2^n.
__attribute__((target("avx512f"), always_inline)) inline __m512 exp16(__m512 x) {
  // (The masked forms with every lane set: GCC 12 warns about the unmasked ones' undefined source.)
  const __mmask16 all = 0xFFFF;
  x = _mm512_mask_max_ps(x, all, x, _mm512_set1_ps(-87.0f));
  x = _mm512_mask_min_ps(x, all, x, _mm512_set1_ps(88.0f));
  const __m512 scaled = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_mask_roundscale_ps(scaled, all, scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_mask_scalef_ps(p, all, p, n);
}

}  // namespace birdplane::train::kernels
#endif
