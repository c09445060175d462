#include "nn/pool.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::nn {
namespace {

// Forward: out [P, h, w] and where [P, h, w] (0..3: top-left, top-right, bottom-left, bottom-right)
// from x [P, H, W], planes in parallel.
void pool_forward(const float* x, float* out, uint8_t* where, int64_t planes, int64_t H, int64_t W, int64_t h,
                  int64_t w) {
  at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* plane = x + p * H * W;
      float* o = out + p * h * w;
      uint8_t* k = where + p * h * w;
      for (int64_t i = 0; i < h; ++i) {
        const float* r0 = plane + (2 * i) * W;
        const float* r1 = r0 + W;
        for (int64_t j = 0; j < w; ++j) {
          // Row-major window order and ATen's test (greater, or NaN): the first maximum wins ties,
          // and NaNs propagate.
          float best = r0[2 * j];
          uint8_t at = 0;
          const float cand[3] = {r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
          for (uint8_t c = 0; c < 3; ++c) {
            if (cand[c] > best || std::isnan(cand[c])) {
              best = cand[c];
              at = static_cast<uint8_t>(c + 1);
            }
          }
          o[i * w + j] = best;
          k[i * w + j] = at;
        }
      }
    }
  });
}

void pool_backward(const float* g, const uint8_t* where, float* gx, int64_t planes, int64_t H, int64_t W, int64_t h,
                   int64_t w) {
  at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* plane = gx + p * H * W;
      std::fill(plane, plane + H * W, 0.0f);
      const float* gp = g + p * h * w;
      const uint8_t* k = where + p * h * w;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          const uint8_t at = k[i * w + j];
          plane[(2 * i + (at >> 1)) * W + 2 * j + (at & 1)] = gp[i * w + j];
        }
    }
  });
}

struct MaxPool2x2 : torch::autograd::Function<MaxPool2x2> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    const at::Tensor x = input.contiguous();
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), h = H / 2, w = W / 2;
    auto out = at::empty({B, C, h, w}, x.options());
    auto where = at::empty({B, C, h, w}, x.options().dtype(at::kByte));
    pool_forward(x.data_ptr<float>(), out.data_ptr<float>(), where.data_ptr<uint8_t>(), B * C, H, W, h, w);
    ctx->save_for_backward({where});
    ctx->saved_data["H"] = H;
    ctx->saved_data["W"] = W;
    ctx->mark_non_differentiable({where});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto where = ctx->get_saved_variables()[0];
    const int64_t H = ctx->saved_data["H"].toInt(), W = ctx->saved_data["W"].toInt();
    const at::Tensor g = grads[0].contiguous();
    const int64_t B = g.size(0), C = g.size(1), h = g.size(2), w = g.size(3);
    auto gx = at::empty({B, C, H, W}, g.options());
    pool_backward(g.data_ptr<float>(), where.data_ptr<uint8_t>(), gx.data_ptr<float>(), B * C, H, W, h, w);
    return {gx};
  }
};

}  // namespace

at::Tensor max_pool2x2(const at::Tensor& x) {
  BIRDPLANE_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat && x.device().is_cpu() && x.size(2) >= 2 &&
                      x.size(3) >= 2,
                  "max_pool2x2 needs a float32 CPU tensor [B,C,H,W] with H and W at least 2, got {} {}",
                  c10::toString(x.scalar_type()), c10::str(x.sizes()));
  return MaxPool2x2::apply(x);
}

}  // namespace birdplane::nn
