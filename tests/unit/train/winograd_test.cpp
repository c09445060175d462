// birdplane's Winograd F(2x2,3x3) convolutions (src/train/winograd.cpp) against LibTorch's convolution in
// float64: the forward pass, the input gradient (the transposed, flipped filters) and the weight
// gradient, on maps of odd and even sizes (half-empty tiles, an odd number of tiles), each no further
// from float64 than a small multiple of oneDNN's direct bf16 form; the weight gradient independent of
// the thread count. The forward pass max-pooled as it is computed equals the forward pass then the
// speedrun's pooling kernel bit for bit, and the weight gradient that skips a gradient's zero last odd
// row and column (behind a 2x2 pool) is as close to float64 as the full one.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "train/speedrun_kernels.h"
#include "train/winograd.h"

using namespace birdplane::train;

// A named namespace: in a unity build this file shares a translation unit with other tests' helpers.
namespace winograd_test {

constexpr auto kCl = at::MemoryFormat::ChannelsLast;

double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() / (b.to(at::kDouble).norm().item<double>() + 1e-30);
}

const uint16_t* bits(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr()); }

struct Case {
  int64_t B, cin, cout, H, W;
};

// The bound: Winograd rounds the transformed inputs to bf16 as well, so it may sit somewhat further from
// float64 than the direct bf16 form (about 1.8x on random data); 3x that form's error, and never more
// than 1.5% (bf16 keeps 8 bits: the direct form's error is about 0.25%).
void expect_close(const at::Tensor& got, const at::Tensor& want, double direct_error, const char* what) {
  const double e = rel(got, want);
  EXPECT_LE(e, 3 * direct_error) << what << ": direct bf16 form's error " << direct_error;
  EXPECT_LE(e, 0.015) << what;
}

// The weight gradient (`pooled`: the caller's promise that dy's last odd row and column are zeros)
// equals the same computed on one thread: its sums run in a fixed order.
void expect_thread_independent(const at::Tensor& dw, const at::Tensor& x, const at::Tensor& dy, const Case& c,
                               bool pooled, const char* what) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto dw1 = at::empty_like(dw);
  winograd::conv3x3_weight_grad(bits(x), bits(dy), c.B, c.H, c.W, c.cin, c.cout, dw1.data_ptr<float>(), pooled);
  at::set_num_threads(threads);
  EXPECT_TRUE(dw1.equal(dw)) << what << " depends on the thread count";
}

class Winograd : public ::testing::TestWithParam<Case> {};

TEST_P(Winograd, MatchesTheDirectConvolution) {
  if (!winograd::available()) GTEST_SKIP() << "no AVX512-BF16 here: the Winograd form cannot run";
  const auto c = GetParam();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto x = torch::randn({c.B, c.cin, c.H, c.W}, gen).to(at::kBFloat16).contiguous(kCl);
  const auto w = (torch::randn({c.cout, c.cin, 3, 3}, gen) / std::sqrt(9.0 * c.cin)).contiguous();
  const auto dy = torch::randn({c.B, c.cout, c.H, c.W}, gen).to(at::kBFloat16).contiguous(kCl);
  const auto xd = x.to(at::kDouble), wd = w.to(at::kDouble), dyd = dy.to(at::kDouble);
  const auto y64 = at::convolution(xd, wd, {}, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1);
  const auto [dx64, dw64, unused64] = at::convolution_backward(dyd, xd, wd, c10::nullopt, {1, 1}, {1, 1}, {1, 1},
                                                               false, {0, 0}, 1, {true, true, false});
  const auto wb = w.to(at::kBFloat16).contiguous(kCl);
  const auto y16 = at::convolution(x, wb, {}, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1);
  const auto [dx16, dw16, unused16] = at::convolution_backward(dy, x, wb, c10::nullopt, {1, 1}, {1, 1}, {1, 1},
                                                               false, {0, 0}, 1, {true, true, false});

  if (winograd::forward_fits(c.cin, c.cout)) {
    auto packed = at::empty({winograd::packed_size(c.cin, c.cout)}, at::kBFloat16);
    winograd::pack(w.data_ptr<float>(), c.cout, c.cin, false, reinterpret_cast<uint16_t*>(packed.data_ptr()));
    auto y = at::empty({c.B, c.cout, c.H, c.W}, x.options().memory_format(kCl)).fill_(7);  // all overwritten
    winograd::conv3x3(bits(x), c.B, c.H, c.W, c.cin, bits(packed), c.cout, reinterpret_cast<uint16_t*>(y.data_ptr()));
    expect_close(y, y64, rel(y16, y64), "forward");
    if (c.H >= 2 && c.W >= 2 && speedrun_kernels::available()) {
      auto pooled = at::full({c.B, c.cout, c.H / 2, c.W / 2}, 7.0, x.options()).contiguous(kCl);
      auto where = at::full({pooled.numel()}, 9, at::kByte);
      winograd::conv3x3_pool2(bits(x), c.B, c.H, c.W, c.cin, bits(packed), c.cout,
                              reinterpret_cast<uint16_t*>(pooled.data_ptr()), where.data_ptr<uint8_t>());
      auto want = at::empty_like(pooled);
      auto want_where = at::empty_like(where);
      std::vector<double> mean(c.cout), var(c.cout);
      speedrun_kernels::pool2_stats(y.data_ptr(), true, c.B, c.H, c.W, c.cout, want.data_ptr(),
                                    want_where.data_ptr<uint8_t>(), mean.data(), var.data());
      EXPECT_TRUE(pooled.equal(want)) << "pooled as computed: not the forward pass then the pool";
      EXPECT_TRUE(where.equal(want_where)) << "the maxima's window positions differ";
    }
  }
  if (winograd::forward_fits(c.cout, c.cin)) {
    auto packed = at::empty({winograd::packed_size(c.cout, c.cin)}, at::kBFloat16);
    winograd::pack(w.data_ptr<float>(), c.cout, c.cin, true, reinterpret_cast<uint16_t*>(packed.data_ptr()));
    auto dx = at::empty({c.B, c.cin, c.H, c.W}, x.options().memory_format(kCl)).fill_(7);
    winograd::conv3x3(bits(dy), c.B, c.H, c.W, c.cout, bits(packed), c.cin, reinterpret_cast<uint16_t*>(dx.data_ptr()));
    expect_close(dx, dx64, rel(dx16, dx64), "input gradient");
  }
  if (winograd::weight_grad_fits(c.cin, c.cout)) {
    auto dw = at::full({c.cout, c.cin, 3, 3}, 7.0f);
    winograd::conv3x3_weight_grad(bits(x), bits(dy), c.B, c.H, c.W, c.cin, c.cout, dw.data_ptr<float>());
    expect_close(dw, dw64, rel(dw16, dw64), "weight gradient");
    expect_thread_independent(dw, x, dy, c, false, "the weight gradient");
  }
  if (winograd::weight_grad_fits(c.cin, c.cout) && (c.H % 2 || c.W % 2)) {
    // Behind a 2x2 pool: the gradient's last odd row and column are zeros, and their tiles are skipped.
    auto dyp = dy.clone();
    if (c.H % 2) dyp.select(2, c.H - 1).zero_();
    if (c.W % 2) dyp.select(3, c.W - 1).zero_();
    const auto dw64p = std::get<1>(at::convolution_backward(dyp.to(at::kDouble), xd, wd, c10::nullopt, {1, 1}, {1, 1},
                                                            {1, 1}, false, {0, 0}, 1, {false, true, false}));
    const auto dw16p = std::get<1>(at::convolution_backward(dyp, x, wb, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, false,
                                                            {0, 0}, 1, {false, true, false}));
    auto dw = at::full({c.cout, c.cin, 3, 3}, 7.0f);
    winograd::conv3x3_weight_grad(bits(x), bits(dyp), c.B, c.H, c.W, c.cin, c.cout, dw.data_ptr<float>(), true);
    expect_close(dw, dw64p, rel(dw16p, dw64p), "weight gradient behind a pool");
    expect_thread_independent(dw, x, dyp, c, true, "the weight gradient behind a pool");
  }
}

// The speedrun's shapes (small batches) and odd ones: half-empty tiles on the right and bottom, one
// pixel, an odd number of tiles (the weight gradient pairs tiles), more tiles than a block or a chunk.
INSTANTIATE_TEST_SUITE_P(Shapes, Winograd,
                         ::testing::Values(Case{2, 256, 256, 7, 7}, Case{3, 256, 256, 3, 3}, Case{2, 64, 256, 15, 15},
                                           Case{1, 64, 64, 1, 1}, Case{3, 32, 64, 5, 6}, Case{1, 24, 64, 31, 31},
                                           Case{5, 128, 32, 9, 4}, Case{40, 64, 32, 8, 8}),
                         [](const auto& info) {
                           const auto& c = info.param;
                           return "B" + std::to_string(c.B) + "_" + std::to_string(c.cin) + "to" +
                                  std::to_string(c.cout) + "_" + std::to_string(c.H) + "x" + std::to_string(c.W);
                         });

TEST(WinogradFits, NamesTheChannelCountsItTakes) {
  EXPECT_TRUE(winograd::forward_fits(256, 256));
  EXPECT_TRUE(winograd::forward_fits(24, 64));
  EXPECT_FALSE(winograd::forward_fits(256, 24));  // outputs in blocks of 32
  EXPECT_FALSE(winograd::forward_fits(3, 64));
  EXPECT_TRUE(winograd::weight_grad_fits(64, 256));
  EXPECT_FALSE(winograd::weight_grad_fits(24, 64));  // inputs in blocks of 32
  EXPECT_FALSE(winograd::weight_grad_fits(64, 12));
  EXPECT_FALSE(winograd::weight_grad_fits(8192, 64));  // past the zero row that stands for rows outside the map
}

}  // namespace winograd_test
