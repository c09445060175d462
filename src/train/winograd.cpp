#include "train/winograd.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>

#include "birdplane/check.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define BIRDPLANE_WG __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,prfchw")))
#define BIRDPLANE_WGI __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,prfchw"), always_inline)) inline
#endif

namespace birdplane::train::winograd {

bool available() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool preferred() {
#if defined(__x86_64__)
  // AMX-BF16: CPUID leaf 7, sub-leaf 0, EDX bit 22 (asked directly: clang's __builtin_cpu_supports does
  // not know the name).
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool amx = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 22) & 1u);
  return available() && !amx;
#else
  return false;
#endif
}

bool forward_fits(int64_t cin, int64_t cout) {
  return (cin == 24 || cin == 32 || cin == 64 || cin == 128 || cin == 256 || cin == 512) && cout > 0 && cout % 32 == 0;
}
bool weight_grad_fits(int64_t cin, int64_t cout) {
  return cin > 0 && cin % 32 == 0 && cin <= 4096 && cout > 0 && cout % 8 == 0 && cout <= 4096;
}
int64_t packed_size(int64_t cin, int64_t cout) { return 16 * cin * cout; }

namespace {

// G of F(2x2, 3x3): the filter transform U = G g G^T (4x3).
constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

uint16_t to_bf16(float f) {  // round to nearest even, as PyTorch converts (finite values)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

void pack(const float* w, int64_t cout, int64_t cin, bool transpose_flip, uint16_t* packed) {
  // Packed layout of the convolution it serves (cin' input, cout' output channels): for each of the 16
  // points and each block of 32 output channels, a panel [cin' / 2][32][2] (the two input channels of a
  // pair side by side), read front to back by the micro-kernel.
  const int64_t ci2 = transpose_flip ? cout : cin, co2 = transpose_flip ? cin : cout;
  BIRDPLANE_CHECK(ci2 % 2 == 0 && co2 % 32 == 0, "winograd pack: {} -> {} channels do not fit", ci2, co2);
  // One block of 32 output channels and one pair of input channels at a time: its 16 points' 128-byte
  // runs are written whole, one after the other (filter by filter, every write would touch a line of
  // its own in 16 panels far apart).
  at::parallel_for(0, co2 / 32, 1, [&](int64_t begin, int64_t end) {
    uint16_t run[16][32][2];
    for (int64_t ob = begin; ob < end; ++ob)
      for (int64_t i2 = 0; i2 < ci2 / 2; ++i2) {
        for (int64_t oo = 0; oo < 32; ++oo)
          for (int par = 0; par < 2; ++par) {
            const int64_t o = ob * 32 + oo, i = 2 * i2 + par;
            double g[3][3];
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx)
                g[ky][kx] = transpose_flip ? w[((i * cin + o) * 3 + (2 - ky)) * 3 + (2 - kx)]
                                           : w[((o * cin + i) * 3 + ky) * 3 + kx];
            double t[4][3];  // G g
            for (int a = 0; a < 4; ++a)
              for (int kx = 0; kx < 3; ++kx) t[a][kx] = kG[a][0] * g[0][kx] + kG[a][1] * g[1][kx] + kG[a][2] * g[2][kx];
            for (int a = 0; a < 4; ++a)
              for (int b = 0; b < 4; ++b)
                run[a * 4 + b][oo][par] =
                    to_bf16(static_cast<float>(t[a][0] * kG[b][0] + t[a][1] * kG[b][1] + t[a][2] * kG[b][2]));
          }
        for (int e = 0; e < 16; ++e)
          std::memcpy(packed + (((e * (co2 / 32) + ob) * (ci2 / 2) + i2) * 32) * 2, run[e], sizeof run[e]);
      }
  });
}

#if defined(__x86_64__)
namespace {

constexpr int64_t kRows = 14;       // tiles per micro-kernel (forward)
constexpr int64_t kBlock = 4 * kRows;  // tiles per block (forward)
// A buffer's panels (one a point) are a cache line (32 bf16) longer than their n values need. Without it,
// for 256 or 512 channels the panels are a multiple of 4 KiB apart, so a tile's stores to them and the
// next loads share their low 12 address bits and the core stalls them as if they overlapped.
constexpr int64_t padded(int64_t n) { return n + 32; }
// A point's panel of a block's transformed inputs: kBlock tiles of cin channels.
constexpr int64_t point_stride(int64_t cin) { return padded(kBlock * cin); }
constexpr int64_t kCols = 32;       // output channels per micro-kernel
constexpr int64_t kChunkPairs = 64;  // tile pairs per chunk (weight gradient)
constexpr int64_t kWRows = 8;       // output channels per weight-gradient micro-kernel

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// (The masked forms with every lane set: GCC 12 warns about the unmasked ones' undefined source.)
constexpr __mmask16 kAll = 0xFFFF;

BIRDPLANE_WGI __m512 widen_bf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, h), 16));
}

BIRDPLANE_WGI __m512 load_bf16(const uint16_t* p, __mmask16 m) { return widen_bf16(_mm256_maskz_loadu_epi16(m, p)); }

BIRDPLANE_WGI __m256i round_bf16(__m512 v) { return (__m256i)_mm512_cvtneps_pbh(v); }

// Where a tile sits: image b, tile row i, tile column j.
struct TileGrid {
  int64_t H, W, th, tw;
  void locate(int64_t t, int64_t& b, int64_t& i, int64_t& j) const {
    b = t / (th * tw);
    const int64_t r = t % (th * tw);
    i = r / tw;
    j = r % tw;
  }
};

// Where a tile's NxN block (N = 4: its inputs; 2: its outputs) is read: point (i, j) at row[i] + j * C,
// with the lanes col[j]. A row outside the map reads a row of zeros (kZeroRow); a column outside it
// reads no memory (its lanes are off: masked loads do not touch them). Found once a tile, not once for
// each group of 16 channels; with C a constant the 16 points are 4 registers and fixed offsets.
struct Block {
  const uint16_t* row[4];
  __mmask16 col[4];
};

constexpr int64_t kMaxChannels = 4096;
alignas(64) const uint16_t kZeroRow[4 * kMaxChannels] = {};

// p + n, where n may step before the map's first pixel (a column outside it, whose lanes are off).
inline const uint16_t* step(const uint16_t* p, int64_t n) {
  return reinterpret_cast<const uint16_t*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(n) * 2);
}

template <int N>
void locate_block(const uint16_t* img, int64_t H, int64_t W, int64_t C, int64_t y0, int64_t x0, Block& blk) {
  for (int i = 0; i < N; ++i) {
    const int64_t y = y0 + i;
    blk.row[i] = y >= 0 && y < H ? step(img, (y * W + x0) * C) : kZeroRow;
  }
  for (int j = 0; j < N; ++j)
    blk.col[j] = x0 + j >= 0 && x0 + j < W ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>(0);
}

// A block that reads nothing (a tile past the last, in a pair): its transform is zeros.
inline void empty_block(Block& blk) {
  std::fill_n(blk.row, 4, kZeroRow);
  std::fill_n(blk.col, 4, static_cast<__mmask16>(0));
}

// The 16 transformed values B^T d B of the block's 16 channels from c (lanes m) of a map of C channels,
// rounded to bf16 and stored at out + e * stride for point e. Column by column first (d's columns to r),
// then row by row, each row's four values stored as soon as they are made: 16 values held at a time.
template <int64_t C>
BIRDPLANE_WGI void input_transform_store(const Block& blk, int64_t c, __mmask16 m, uint16_t* out, int64_t stride) {
  __m512 r[4][4];
  for (int j = 0; j < 4; ++j) {
    __m512 d[4];
    for (int i = 0; i < 4; ++i) d[i] = load_bf16(blk.row[i] + j * C + c, m & blk.col[j]);
    r[0][j] = _mm512_sub_ps(d[0], d[2]);
    r[1][j] = _mm512_add_ps(d[1], d[2]);
    r[2][j] = _mm512_sub_ps(d[2], d[1]);
    r[3][j] = _mm512_sub_ps(d[1], d[3]);
  }
  for (int a = 0; a < 4; ++a) {
    uint16_t* o = out + a * 4 * stride;
    _mm256_mask_storeu_epi16(o, m, round_bf16(_mm512_sub_ps(r[a][0], r[a][2])));
    _mm256_mask_storeu_epi16(o + stride, m, round_bf16(_mm512_add_ps(r[a][1], r[a][2])));
    _mm256_mask_storeu_epi16(o + 2 * stride, m, round_bf16(_mm512_sub_ps(r[a][2], r[a][1])));
    _mm256_mask_storeu_epi16(o + 3 * stride, m, round_bf16(_mm512_sub_ps(r[a][1], r[a][3])));
  }
}

// c[r][0..31] (+)= sum over the K pairs p of a[r] . b[p] : R rows of a (two bf16 a row and pair, row r
// at a + r * LDA, pair p at + p * a_step), 32 columns of b (two bf16 a column, pair p at b + p * ldb).
// Results to c (float, row stride ldc), added to what is there when ACC. LDA is a constant so that the
// rows' addresses are one register and fixed offsets: the 28 sums then stay in registers.
template <int R, int64_t LDA, bool ACC>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"), noinline)) void micro(
    const uint16_t* a, int64_t a_step, const uint16_t* b, int64_t ldb, int64_t pairs, float* c, int64_t ldc) {
  __m512 acc[R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    acc[r][0] = ACC ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
    acc[r][1] = ACC ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 32);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * LDA, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
    a += a_step;
    b += ldb;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(c + r * ldc, acc[r][0]);
    _mm512_storeu_ps(c + r * ldc + 16, acc[r][1]);
  }
}

using Micro = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);

// The rows of a [B,H,W,C] map that the tiles [t0, t1) read (their 4x4 input blocks; `output`: the rows
// their 2x2 outputs write), as a byte range.
std::pair<const char*, const char*> tile_rows(const void* map, const TileGrid& g, int64_t C, int64_t t0, int64_t t1,
                                              bool output) {
  int64_t b0, i0, j0, b1, i1, j1;
  g.locate(t0, b0, i0, j0);
  g.locate(t1 - 1, b1, i1, j1);
  const int64_t first = output ? 2 * i0 : std::max<int64_t>(2 * i0 - 1, 0);
  const int64_t last = std::min<int64_t>(output ? 2 * i1 + 1 : 2 * i1 + 2, g.H - 1);
  const char* base = static_cast<const char*>(map);
  return {base + (b0 * g.H + first) * g.W * C * 2, base + ((b1 * g.H + last) * g.W + g.W) * C * 2};
}

// Asks for a byte range ahead of its use, into the core's L2 (`write`: for writing), a slice at a time
// between pieces of other work. The transforms read each input from four tiles' blocks, in an order the
// hardware prefetchers do not follow far enough ahead; the products in between are long enough to bring
// the next block's rows in. Issued all at once, the thousands of requests fill the core's miss buffers
// and the loop waits there for them to drain (5-7% of the forward pass's own time in a profile); spread
// over the products, they can drain while the products run. (On the Zen 5 VM of docs/speedrun.md the
// two measured the same within noise: the gain of commit 3320abe is the transforms'.)
class Prefetch {
 public:
  Prefetch(std::pair<const char*, const char*> range, int64_t slices, bool write)
      : p_(range.first), end_(range.second), write_(write) {
    const int64_t lines = range.second > range.first ? (range.second - range.first + 63) / 64 : 0;
    per_ = (lines + slices - 1) / slices;
  }
  void slice() {
    for (int64_t k = 0; k < per_ && p_ < end_; ++k, p_ += 64) {
      if (write_) __builtin_prefetch(p_, 1, 2);
      else __builtin_prefetch(p_, 0, 2);
    }
  }
  void rest() {
    while (p_ < end_) slice();
  }

 private:
  const char* p_;
  const char* end_;
  int64_t per_ = 0;
  bool write_;
};

// Y = A^T M A (A^T = [[1,1,1,0],[0,1,-1,-1]]): a tile's 2x2 outputs out[row][column] from its 16 products
// (16 channels; point e at m + e * kCols).
BIRDPLANE_WGI void output_transform(const float* m, __m512 out[2][2]) {
  __m512 mv[16];
  for (int e = 0; e < 16; ++e) mv[e] = _mm512_loadu_ps(m + e * kCols);
  __m512 s[2][4];
  for (int q = 0; q < 4; ++q) {
    s[0][q] = _mm512_add_ps(_mm512_add_ps(mv[q], mv[4 + q]), mv[8 + q]);
    s[1][q] = _mm512_sub_ps(_mm512_sub_ps(mv[4 + q], mv[8 + q]), mv[12 + q]);
  }
  for (int r = 0; r < 2; ++r) {
    out[r][0] = _mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]);
    out[r][1] = _mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]);
  }
}

// The transformed inputs of a block's tiles t0 .. t0 + nt into vb[point][tile][kC] (a point's panel
// point_stride apart; zeros for the tiles past nt, up to kBlock), and where each tile is (image, tile row,
// tile column), for the pass back.
template <int64_t kC>
BIRDPLANE_WG void transform_tiles(const uint16_t* x, const TileGrid& g, int64_t t0, int64_t nt, uint16_t* vb,
                                  int64_t* where_b, int64_t* where_i, int64_t* where_j) {
  for (int64_t t = 0; t < kBlock; ++t) {
    if (t >= nt) {
      for (int e = 0; e < 16; ++e) std::memset(vb + e * point_stride(kC) + t * kC, 0, kC * sizeof(uint16_t));
      continue;
    }
    int64_t& b = where_b[t];
    int64_t& i = where_i[t];
    int64_t& j = where_j[t];
    g.locate(t0 + t, b, i, j);
    Block in;
    locate_block<4>(x + b * g.H * g.W * kC, g.H, g.W, kC, 2 * i - 1, 2 * j - 1, in);
    for (int64_t c = 0; c < kC; c += 16)
      input_transform_store<kC>(in, c, lanes(kC - c), vb + t * kC + c, point_stride(kC));
  }
}

using Transform = void (*)(const uint16_t*, const TileGrid&, int64_t, int64_t, uint16_t*, int64_t*, int64_t*, int64_t*);

// The forward pass's micro-kernel (rows of a at stride cin) and input transform for cin input channels
// (one of forward_fits's; nulls for any other).
template <int64_t kC>
std::pair<Micro, Transform> forward_for() {
  return {micro<kRows, kC, false>, transform_tiles<kC>};
}
std::pair<Micro, Transform> forward_kernels(int64_t cin) {
  switch (cin) {
    case 24: return forward_for<24>();
    case 32: return forward_for<32>();
    case 64: return forward_for<64>();
    case 128: return forward_for<128>();
    case 256: return forward_for<256>();
    case 512: return forward_for<512>();
    default: return {nullptr, nullptr};
  }
}

// The blocks [blk_begin, blk_end) of the convolution's tiles. With kPool, y is the 2x2 max pool of the
// output ([B, g.th, g.tw, cout], one value a tile: a tile's 2x2 outputs are a pooling window) and `where`
// the window position of each maximum (0..3, row-major, the first wins ties), as pool2_stats gives them:
// each output is rounded to bf16 before the comparisons.
template <bool kPool>
BIRDPLANE_WG void conv_blocks(const uint16_t* x, const TileGrid& g, int64_t T, int64_t cin, const uint16_t* packed,
                              int64_t cout, uint16_t* y, uint8_t* where, int64_t blk_begin, int64_t blk_end) {
  thread_local std::vector<uint16_t> vb;  // kept: no fresh pages for every call
  thread_local std::vector<float> mb;     // [tile][point][32]
  vb.resize(static_cast<size_t>(16 * point_stride(cin)));
  mb.resize(static_cast<size_t>(kBlock * 16 * kCols));
  const int64_t H = g.H, W = g.W, pairs = cin / 2;
  const auto [kernel, transform] = forward_kernels(cin);
  for (int64_t blk = blk_begin; blk < blk_end; ++blk) {
    const int64_t t0 = blk * kBlock, nt = std::min(kBlock, T - t0);
    int64_t where_b[kBlock], where_i[kBlock], where_j[kBlock];
    transform(x, g, t0, nt, vb.data(), where_b, where_i, where_j);
    const auto* out = reinterpret_cast<const char*>(y);  // pooled: one pixel a tile
    // A slice after each point's products: the outputs over the first block of channels (they are
    // written after it), the next block's inputs over all of them.
    Prefetch out_rows(kPool ? std::make_pair(out + t0 * cout * 2, out + (t0 + nt) * cout * 2)
                            : tile_rows(y, g, cout, t0, t0 + nt, true),
                      16, true);
    Prefetch next_rows(blk + 1 < blk_end ? tile_rows(x, g, cin, t0 + kBlock, std::min(T, t0 + 2 * kBlock), false)
                                         : std::make_pair(out, out),
                       16 * (cout / kCols), false);
    for (int64_t o = 0; o < cout; o += kCols) {
      for (int e = 0; e < 16; ++e) {
        const uint16_t* u = packed + ((e * (cout / kCols) + o / kCols) * pairs) * kCols * 2;
        for (int64_t r0 = 0; r0 < kBlock; r0 += kRows)
          kernel(&vb[e * point_stride(cin) + r0 * cin], 2, u, kCols * 2, pairs, &mb[(r0 * 16 + e) * kCols], 16 * kCols);
        out_rows.slice();
        next_rows.slice();
      }
      out_rows.rest();
      // Back from the transformed space, tile by tile, 16 channels at a time.
      for (int64_t t = 0; t < nt; ++t) {
        for (int half = 0; half < 2; ++half) {
          __m512 out[2][2];
          output_transform(&mb[t * 16 * kCols + half * 16], out);
          if constexpr (kPool) {
            // Each output as the unpooled form stores it (bf16), back in float (exact), then the maximum.
            __m512 best = widen_bf16(round_bf16(out[0][0]));
            __m512i at = _mm512_setzero_si512();
            for (int q = 1; q < 4; ++q) {
              const __m512 v = widen_bf16(round_bf16(out[q / 2][q % 2]));
              const __mmask16 gt = _mm512_mask_cmp_ps_mask(kAll, v, best, _CMP_GT_OQ);
              best = _mm512_mask_mov_ps(best, gt, v);
              at = _mm512_mask_mov_epi32(at, gt, _mm512_set1_epi32(q));
            }
            const int64_t at_out = (t0 + t) * cout + o + half * 16;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + at_out), round_bf16(best));
            if (where)
              _mm_storeu_si128(reinterpret_cast<__m128i*>(where + at_out), _mm512_maskz_cvtepi32_epi8(kAll, at));
          } else {  // (pooled, above: the tile's index is the output's)
            const int64_t b = where_b[t], i = where_i[t], j = where_j[t];
            uint16_t* img = y + b * H * W * cout;
            for (int r = 0; r < 2; ++r) {
              const int64_t yy = 2 * i + r;
              if (yy >= H) continue;
              uint16_t* row = img + (yy * W + 2 * j) * cout + o + half * 16;
              _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), round_bf16(out[r][0]));
              if (2 * j + 1 < W) _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + cout), round_bf16(out[r][1]));
            }
          }
        }
      }
    }
  }
}

// Half `h` of the 16 transformed values of the 4x4 input block at (y0, x0): rows 2h and 2h+1 of
// B^T d B (points 8h .. 8h+7), 16 channels from c. Half 0 needs input rows 0-2 of the block, half 1
// rows 1-3.
template <int h>
BIRDPLANE_WGI void input_transform_half(const Block& blk, int64_t C, int64_t c, __m512 v[8]) {
  __m512 d[4][4];
  for (int i = h; i < 3 + h; ++i)
    for (int j = 0; j < 4; ++j) d[i][j] = load_bf16(blk.row[i] + j * C + c, blk.col[j]);
  __m512 r[2][4];
  for (int j = 0; j < 4; ++j) {
    if constexpr (h == 0) {
      r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
      r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
    } else {
      r[0][j] = _mm512_sub_ps(d[2][j], d[1][j]);
      r[1][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
  }
  for (int a = 0; a < 2; ++a) {
    v[a * 4 + 0] = _mm512_sub_ps(r[a][0], r[a][2]);
    v[a * 4 + 1] = _mm512_add_ps(r[a][1], r[a][2]);
    v[a * 4 + 2] = _mm512_sub_ps(r[a][2], r[a][1]);
    v[a * 4 + 3] = _mm512_sub_ps(r[a][1], r[a][3]);
  }
}

// Half `h` of the transformed output gradients A dY A^T of the 2x2 output block at (y0, x0).
template <int h>
BIRDPLANE_WGI void grad_transform_half(const Block& blk, int64_t C, int64_t c, __mmask16 m, __m512 v[8]) {
  __m512 d[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) d[i][j] = load_bf16(blk.row[i] + j * C + c, m & blk.col[j]);
  __m512 q[2][2];
  for (int j = 0; j < 2; ++j) {
    if constexpr (h == 0) {
      q[0][j] = d[0][j];
      q[1][j] = _mm512_add_ps(d[0][j], d[1][j]);
    } else {
      q[0][j] = _mm512_sub_ps(d[0][j], d[1][j]);
      q[1][j] = _mm512_sub_ps(_mm512_setzero_ps(), d[1][j]);
    }
  }
  for (int a = 0; a < 2; ++a) {
    v[a * 4 + 0] = q[a][0];
    v[a * 4 + 1] = _mm512_add_ps(q[a][0], q[a][1]);
    v[a * 4 + 2] = _mm512_sub_ps(q[a][0], q[a][1]);
    v[a * 4 + 3] = _mm512_sub_ps(_mm512_setzero_ps(), q[a][1]);
  }
}

// a and b rounded to bf16 and interleaved: a0 b0 a1 b1 ... a15 b15.
BIRDPLANE_WGI __m512i interleave(__m512 a, __m512 b) {
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // a in the low half, b in the high half
  const __m512i index = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(index, both);
}

// Half h of the weight gradient in the transformed space: du[8][cout][cin] (points 8h .. 8h+7) summed
// over all tiles, in chunks of tile pairs: the chunk's transformed inputs vw[8][pair][cin][2] and
// output gradients mw[8][pair][cout][2] (a pair's two tiles side by side, the products' two bf16 a
// lane), then the products into du. One thread does a whole half, so the buffers stay in its cache and
// the order of the sums is fixed.
template <int h>
BIRDPLANE_WG void weight_half(const uint16_t* x, const uint16_t* dy, const TileGrid& g, int64_t T, int64_t cin,
                              int64_t cout, float* du) {
  const int64_t H = g.H, W = g.W, P = (T + 1) / 2;
  thread_local std::vector<uint16_t> vw, mw;
  vw.resize(static_cast<size_t>(8 * padded(kChunkPairs * cin * 2)));
  mw.resize(static_cast<size_t>(8 * padded(kChunkPairs * cout * 2)));
  for (int64_t first = 0; first < P; first += kChunkPairs) {
    const int64_t np = std::min(kChunkPairs, P - first), vs = padded(np * cin * 2), ms = padded(np * cout * 2);
    for (int64_t p = 0; p < np; ++p) {
      Block in[2], out[2];  // the pair's two tiles' input and output-gradient blocks
      for (int s = 0; s < 2; ++s) {
        const int64_t t = 2 * (first + p) + s;
        if (t < T) {
          int64_t b, i, j;
          g.locate(t, b, i, j);
          locate_block<4>(x + b * H * W * cin, H, W, cin, 2 * i - 1, 2 * j - 1, in[s]);
          locate_block<2>(dy + b * H * W * cout, H, W, cout, 2 * i, 2 * j, out[s]);
        } else {
          empty_block(in[s]);
          empty_block(out[s]);
        }
      }
      for (int64_t c = 0; c < cin; c += 16) {
        __m512 v[2][8];
        for (int s = 0; s < 2; ++s) input_transform_half<h>(in[s], cin, c, v[s]);
        for (int e = 0; e < 8; ++e) _mm512_storeu_si512(&vw[e * vs + (p * cin + c) * 2], interleave(v[0][e], v[1][e]));
      }
      for (int64_t c = 0; c < cout; c += 16) {
        const __mmask16 m = lanes(cout - c);
        __m512 v[2][8];
        for (int s = 0; s < 2; ++s) grad_transform_half<h>(out[s], cout, c, m, v[s]);
        for (int e = 0; e < 8; ++e)
          _mm512_mask_storeu_epi32(&mw[e * ms + (p * cout + c) * 2], m, interleave(v[0][e], v[1][e]));
      }
    }
    const int64_t next = 2 * (first + np), next_end = std::min(T, next + 2 * kChunkPairs);
    const char* none = reinterpret_cast<const char*>(x);
    Prefetch next_x(next < T ? tile_rows(x, g, cin, next, next_end, false) : std::make_pair(none, none), 8, false);
    Prefetch next_dy(next < T ? tile_rows(dy, g, cout, next, next_end, true) : std::make_pair(none, none), 8, false);
    const auto kernel = first > 0 ? micro<kWRows, 2, true> : micro<kWRows, 2, false>;
    for (int e = 0; e < 8; ++e) {
      const uint16_t* ve = &vw[e * vs];
      const uint16_t* me = &mw[e * ms];
      float* de = du + e * cout * cin;
      for (int64_t o = 0; o < cout; o += kWRows)
        for (int64_t c = 0; c < cin; c += kCols) kernel(me + o * 2, cout * 2, ve + c * 2, cin * 2, np, de + o * cin + c, cin);
      next_x.slice();
      next_dy.slice();
    }
  }
}

}  // namespace

void conv3x3(const uint16_t* x, int64_t B, int64_t H, int64_t W, int64_t cin, const uint16_t* packed, int64_t cout,
             uint16_t* y) {
  BIRDPLANE_CHECK(available() && forward_fits(cin, cout), "winograd conv3x3: unsupported ({} -> {} channels)", cin,
                  cout);
  const TileGrid g{H, W, (H + 1) / 2, (W + 1) / 2};
  const int64_t T = B * g.th * g.tw, blocks = (T + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1,
                   [&](int64_t b0, int64_t b1) { conv_blocks<false>(x, g, T, cin, packed, cout, y, nullptr, b0, b1); });
}

void conv3x3_pool2(const uint16_t* x, int64_t B, int64_t H, int64_t W, int64_t cin, const uint16_t* packed,
                   int64_t cout, uint16_t* pooled, uint8_t* where) {
  BIRDPLANE_CHECK(available() && forward_fits(cin, cout), "winograd conv3x3_pool2: unsupported ({} -> {} channels)",
                  cin, cout);
  const TileGrid g{H, W, H / 2, W / 2};  // the tiles the pool reads; a last odd row or column is never computed
  const int64_t T = B * g.th * g.tw, blocks = (T + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    conv_blocks<true>(x, g, T, cin, packed, cout, pooled, where, b0, b1);
  });
}

void conv3x3_weight_grad(const uint16_t* x, const uint16_t* dy, int64_t B, int64_t H, int64_t W, int64_t cin,
                         int64_t cout, float* dw, bool pooled) {
  BIRDPLANE_CHECK(available() && weight_grad_fits(cin, cout), "winograd weight gradient: unsupported ({} -> {} channels)",
                  cin, cout);
  // With `pooled`, a last odd row and column of dy are zeros: the tiles that hold nothing else are skipped.
  const TileGrid g = pooled ? TileGrid{H, W, H / 2, W / 2} : TileGrid{H, W, (H + 1) / 2, (W + 1) / 2};
  const int64_t T = B * g.th * g.tw;
  if (T == 0) {  // no tile (an empty batch, or a 1-pixel map behind a pool): no sum to move back
    std::fill_n(dw, cout * cin * 9, 0.0f);
    return;
  }
  thread_local std::vector<float> du;  // kept: no fresh pages for every call (every value is written)
  if (du.size() < static_cast<size_t>(16 * cout * cin)) du.resize(static_cast<size_t>(16 * cout * cin));
  float* sums = du.data();  // (by pointer: in another thread `du` names that thread's own vector)
  at::parallel_for(0, 2, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      if (h == 0) weight_half<0>(x, dy, g, T, cin, cout, sums);
      else weight_half<1>(x, dy, g, T, cin, cout, sums + 8 * cout * cin);
    }
  });
  // Back to 3x3 filters: dg = G^T dU G.
  at::parallel_for(0, cout, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t c = 0; c < cin; ++c) {
        double t[3][4];
        for (int ky = 0; ky < 3; ++ky)
          for (int b = 0; b < 4; ++b) {
            double s = 0;
            for (int a = 0; a < 4; ++a) s += kG[a][ky] * sums[((a * 4 + b) * cout + o) * cin + c];
            t[ky][b] = s;
          }
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            double s = 0;
            for (int b = 0; b < 4; ++b) s += t[ky][b] * kG[b][kx];
            dw[((o * cin + c) * 3 + ky) * 3 + kx] = static_cast<float>(s);
          }
      }
  });
}

#else
void conv3x3(const uint16_t*, int64_t, int64_t, int64_t, int64_t, const uint16_t*, int64_t, uint16_t*) {
  BIRDPLANE_CHECK(false, "winograd conv3x3 needs an x86-64 CPU with AVX512-BF16");
}
void conv3x3_pool2(const uint16_t*, int64_t, int64_t, int64_t, int64_t, const uint16_t*, int64_t, uint16_t*, uint8_t*) {
  BIRDPLANE_CHECK(false, "winograd conv3x3_pool2 needs an x86-64 CPU with AVX512-BF16");
}
void conv3x3_weight_grad(const uint16_t*, const uint16_t*, int64_t, int64_t, int64_t, int64_t, int64_t, float*, bool) {
  BIRDPLANE_CHECK(false, "winograd weight gradient needs an x86-64 CPU with AVX512-BF16");
}
#endif

}  // namespace birdplane::train::winograd
