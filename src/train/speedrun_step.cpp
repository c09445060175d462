#include "train/speedrun_step.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/train/evaluate.h"
#include "train/speedrun_kernels.h"
#include "train/winograd.h"

namespace birdplane::train {
namespace {

constexpr auto kCl = at::MemoryFormat::ChannelsLast;
namespace k = speedrun_kernels;

// Batch statistics of one batch norm: mean, 1/sqrt(var + eps) (biased variance, as normalization
// uses) as float vectors, and the running statistics moved toward them (unbiased variance, as PyTorch).
struct NormStats {
  at::Tensor mean, invstd;
  int64_t count = 0;
};

NormStats finish_stats(const std::vector<double>& mean, const std::vector<double>& var, int64_t count,
                       at::Tensor& running_mean, at::Tensor& running_var, at::Tensor& batches) {
  const int64_t C = static_cast<int64_t>(mean.size());
  NormStats s;
  s.count = count;
  s.mean = torch::empty({C});
  s.invstd = torch::empty({C});
  auto unbiased = torch::empty({C});
  const double n = static_cast<double>(count);
  for (int64_t c = 0; c < C; ++c) {
    s.mean.data_ptr<float>()[c] = static_cast<float>(mean[c]);
    s.invstd.data_ptr<float>()[c] = static_cast<float>(1.0 / std::sqrt(var[c] + nn::SpeedrunNet::kNormEps));
    unbiased.data_ptr<float>()[c] = static_cast<float>(count > 1 ? var[c] * n / (n - 1) : var[c]);
  }
  torch::NoGradGuard no_grad;
  const double m = nn::SpeedrunNet::kNormMomentum;
  running_mean.mul_(1 - m).add_(s.mean, m);
  running_var.mul_(1 - m).add_(unbiased, m);
  batches.add_(1);
  return s;
}

at::Tensor conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t padding) {
  return at::convolution(x, w, bias, {1, 1}, {padding, padding}, {1, 1}, false, {0, 0}, 1).contiguous(kCl);
}

// Whether a 3x3 convolution of cin -> cout channels runs in Winograd's form, forward and both gradients
// (when that form is on): every layer but the first, whose 24 input channels do not fit the gradients'
// blocks (its forward pass is winograd_pooled_layer's choice).
bool winograd_layer(bool enabled, int64_t cin, int64_t cout) {
  return enabled && cin >= 64 && cout >= 64 && winograd::forward_fits(cin, cout) &&
         winograd::forward_fits(cout, cin) && winograd::weight_grad_fits(cin, cout);
}

// Whether a group's first convolution, the one the 2x2 pool follows, runs forward in Winograd's form
// pooled as it is computed (when that form is on). The first layer too: without its full map to write
// and read back, it outruns oneDNN's convolution and pool (docs/speedrun.md); its gradients stay direct.
bool winograd_pooled_layer(bool enabled, int64_t cin, int64_t cout) {
  return enabled && winograd::forward_fits(cin, cout);
}

// The filters w [cout, cin, 3, 3] (float) packed for winograd::conv3x3 (transpose_flip: for the input
// gradient), in a bfloat16 tensor.
at::Tensor winograd_pack(const at::Tensor& w, bool transpose_flip) {
  const auto wf = w.to(at::kFloat).contiguous();
  auto packed = at::empty({winograd::packed_size(w.size(1), w.size(0))}, at::kBFloat16);
  winograd::pack(wf.data_ptr<float>(), w.size(0), w.size(1), transpose_flip,
                 reinterpret_cast<uint16_t*>(packed.data_ptr()));
  return packed;
}

// y = the 3x3 convolution (padding 1) of x [B,cin,H,W] (bfloat16, channels-last) in Winograd's form.
at::Tensor winograd_conv(const at::Tensor& x, const at::Tensor& packed, int64_t cout) {
  BIRDPLANE_CHECK(x.scalar_type() == at::kBFloat16 && x.dim() == 4 && x.is_contiguous(kCl),
                  "winograd_conv takes a bfloat16 channels-last [B,C,H,W] tensor");
  const int64_t B = x.size(0), cin = x.size(1), H = x.size(2), W = x.size(3);
  auto y = at::empty({B, cout, H, W}, x.options().memory_format(kCl));
  winograd::conv3x3(reinterpret_cast<const uint16_t*>(x.data_ptr()), B, H, W, cin,
                    reinterpret_cast<const uint16_t*>(packed.data_ptr()), cout, reinterpret_cast<uint16_t*>(y.data_ptr()));
  return y;
}

// The 3x3 convolution of x with the packed filters, max-pooled 2x2 (floor) as it is computed: into
// pooled [B,cout,H/2,W/2] (channels-last, bfloat16) and, unless it is undefined, the window positions
// `where` (uint8, [B,H/2,W/2,cout]), both allocated by the caller.
void winograd_conv_pool(const at::Tensor& x, const at::Tensor& packed, at::Tensor& pooled, at::Tensor& where) {
  BIRDPLANE_CHECK(x.scalar_type() == at::kBFloat16 && x.dim() == 4 && x.is_contiguous(kCl) &&
                      pooled.scalar_type() == at::kBFloat16 && pooled.is_contiguous(kCl) &&
                      pooled.size(0) == x.size(0) && pooled.size(2) == x.size(2) / 2 &&
                      pooled.size(3) == x.size(3) / 2 && (!where.defined() || where.numel() == pooled.numel()),
                  "winograd_conv_pool takes bfloat16 channels-last tensors of matching sizes");
  winograd::conv3x3_pool2(reinterpret_cast<const uint16_t*>(x.data_ptr()), x.size(0), x.size(2), x.size(3), x.size(1),
                          reinterpret_cast<const uint16_t*>(packed.data_ptr()), pooled.size(1),
                          reinterpret_cast<uint16_t*>(pooled.data_ptr()),
                          where.defined() ? where.data_ptr<uint8_t>() : nullptr);
}

// The input and weight gradients of a 3x3 convolution (padding 1, no bias) of x with w (float32 [cout,
// cin,3,3]) for the output gradient dy; the input gradient only when asked. Winograd's form when
// `wino`, else oneDNN's direct form with wc (w as the convolution ran it). `pooled`: dy came back through a
// 2x2 max pool, so a last odd row and column of it are zeros (Winograd's form skips them).
std::pair<at::Tensor, at::Tensor> conv_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w,
                                                const at::Tensor& wc, bool wino, bool need_input, bool pooled) {
  if (!wino) {
    auto [dx, dw, unused] = at::convolution_backward(dy, x, wc, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1,
                                                     {need_input, true, false});
    return {need_input ? dx.contiguous(kCl) : at::Tensor(), dw.to(at::kFloat).contiguous()};
  }
  BIRDPLANE_CHECK(x.scalar_type() == at::kBFloat16 && dy.scalar_type() == at::kBFloat16 && x.is_contiguous(kCl) &&
                      dy.is_contiguous(kCl) && dy.sizes()[0] == x.sizes()[0] && dy.size(2) == x.size(2) &&
                      dy.size(3) == x.size(3),
                  "winograd conv_backward takes bfloat16 channels-last x and dy of one batch and map size");
  const int64_t B = x.size(0), cin = x.size(1), H = x.size(2), W = x.size(3), cout = dy.size(1);
  auto dw = at::empty({cout, cin, 3, 3});
  winograd::conv3x3_weight_grad(reinterpret_cast<const uint16_t*>(x.data_ptr()),
                                reinterpret_cast<const uint16_t*>(dy.data_ptr()), B, H, W, cin, cout,
                                dw.data_ptr<float>(), pooled);
  at::Tensor dx;
  if (need_input) dx = winograd_conv(dy, winograd_pack(w, true), cin);
  return {dx, dw};
}

}  // namespace

// What the forward pass keeps for the backward pass, per group.
struct SpeedrunStep::Fused {
  struct Group {
    at::Tensor in, w1, pooled, w2, y2, a1;
    at::Tensor where;  // uint8, the pool's window positions
    NormStats n1, n2;
    int64_t H = 0, W = 0;
    bool wino1 = false, wino2 = false;  // the convolutions in Winograd's form
  };
  Group groups[3];
  bool winograd = false;  // bf16 and the CPU runs winograd::conv3x3
};

SpeedrunStep::SpeedrunStep(nn::SpeedrunNet& net, StepKind kind, bool bf16, double label_smoothing,
                           ConvAlgorithm conv_algorithm)
    : net_(net), bf16_(bf16), smoothing_(label_smoothing) {
  const bool cpu = net.whiten_weight().device().is_cpu();
  const std::string why =
      !cpu ? "the fused step runs on the CPU only" : !k::available() ? "this CPU has no AVX-512" : "";
  const bool can = bf16 && winograd::available();
  // The step's own precondition (run_speedrun's settings check names the setting to change first).
  BIRDPLANE_CHECK_SETTING(
      conv_algorithm != ConvAlgorithm::kWinograd || (kind != StepKind::kAutograd && why.empty() && can), "conv",
      "winograd runs in the fused step, in bf16, on a CPU with AVX512-BF16; use auto or direct");
  if (kind == StepKind::kAutograd) {
    description_ = "autograd";
    return;
  }
  BIRDPLANE_CHECK_SETTING(kind != StepKind::kFused || why.empty(), "step", "fused: {}; use auto or autograd", why);
  if (!why.empty()) {
    description_ = "autograd (" + why + ")";
    return;
  }
  fused_ = std::make_unique<Fused>();
  description_ = "fused";
  fused_->winograd = conv_algorithm == ConvAlgorithm::kWinograd || (conv_algorithm == ConvAlgorithm::kAuto && can &&
                                                                     winograd::preferred());
  if (fused_->winograd) description_ = "fused, winograd";
}

SpeedrunStep::~SpeedrunStep() = default;

SpeedrunStepResult SpeedrunStep::gradients(const at::Tensor& x, const at::Tensor& y) {
  for (auto& p : net_.parameters())
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  SpeedrunStepResult r;
  if (!fused_) {
    at::Tensor out;
    {
      PrecisionScope scope(bf16_);
      out = net_.logits(x);
    }
    out = out.to(at::kFloat);
    auto loss = at::cross_entropy_loss(out, y, {}, at::Reduction::Sum, -100, smoothing_);
    loss.backward();
    r.loss_sum = loss.item<double>();
    r.correct = out.argmax(1).eq(y).sum().item<int64_t>();
    return r;
  }

  torch::NoGradGuard no_grad;
  const auto T = bf16_ ? at::kBFloat16 : at::kFloat;
  const bool bf = bf16_;
  const int64_t B = x.size(0);
  auto cast = [&](const at::Tensor& t) { return t.to(T).contiguous(kCl); };

  // Forward. The whitening convolution and its GELU.
  const auto x0 = cast(x);
  const auto z0 = conv(x0, cast(net_.whiten_weight()), net_.whiten_bias().to(T), 0);
  auto a0 = at::empty_like(z0);
  k::gelu(z0.data_ptr(), bf, z0.numel(), a0.data_ptr());
  at::Tensor in = a0;
  for (int g = 0; g < 3; ++g) {
    auto& G = net_.group(g);
    auto& S = fused_->groups[g];
    S.in = in;
    const int64_t C = G.conv1.size(0), C0 = G.conv1.size(1);
    S.wino1 = winograd_layer(fused_->winograd, C0, C);
    S.wino2 = winograd_layer(fused_->winograd, C, C);
    S.w1 = S.wino1 ? at::Tensor() : cast(G.conv1);
    const int64_t H = in.size(2), W = in.size(3), rows1 = B * (H / 2) * (W / 2);
    S.H = H;
    S.W = W;
    S.pooled = at::empty({B, C, H / 2, W / 2}, in.options().memory_format(kCl));
    S.where = at::empty({S.pooled.numel()}, at::kByte);
    std::vector<double> mean(C), var(C);
    if (winograd_pooled_layer(fused_->winograd, C0, C)) {  // pooled as it is computed: the full map is never written
      winograd_conv_pool(in, winograd_pack(G.conv1, false), S.pooled, S.where);
      k::channel_stats(S.pooled.data_ptr(), bf, rows1, C, mean.data(), var.data());
    } else {
      const auto y1 = conv(in, S.w1, {}, 1);
      k::pool2_stats(y1.data_ptr(), bf, B, H, W, C, S.pooled.data_ptr(), S.where.data_ptr<uint8_t>(), mean.data(),
                     var.data());
    }
    S.n1 = finish_stats(mean, var, rows1, G.mean1, G.var1, G.count1);
    S.a1 = at::empty_like(S.pooled);
    k::norm_gelu(S.pooled.data_ptr(), bf, rows1, C, S.n1.mean.data_ptr<float>(), S.n1.invstd.data_ptr<float>(),
                 G.shift1.data_ptr<float>(), S.a1.data_ptr());
    S.w2 = S.wino2 ? at::Tensor() : cast(G.conv2);
    S.y2 = S.wino2 ? winograd_conv(S.a1, winograd_pack(G.conv2, false), C) : conv(S.a1, S.w2, {}, 1);
    k::channel_stats(S.y2.data_ptr(), bf, rows1, C, mean.data(), var.data());
    S.n2 = finish_stats(mean, var, rows1, G.mean2, G.var2, G.count2);
    auto a2 = at::empty_like(S.y2);
    k::norm_gelu(S.y2.data_ptr(), bf, rows1, C, S.n2.mean.data_ptr<float>(), S.n2.invstd.data_ptr<float>(),
                 G.shift2.data_ptr<float>(), a2.data_ptr());
    in = a2;
  }
  // The 3x3 max pool to one pixel, the head and the loss (small: LibTorch's operations, in float).
  const int64_t C3 = in.size(1), cells = in.size(2) * in.size(3);
  const auto a3 = in.permute({0, 2, 3, 1}).reshape({B, cells, C3}).to(at::kFloat);  // a view: channels-last
  const auto [feat, cell] = a3.max(1);
  auto& head = net_.head();
  const auto logits = feat.mm(head.t()).mul(nn::SpeedrunNet::kHeadScale);
  const auto loss = at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum, -100, smoothing_);
  r.loss_sum = loss.item<double>();
  r.correct = logits.argmax(1).eq(y).sum().item<int64_t>();
  const int64_t K = logits.size(1);
  const auto target = at::one_hot(y, K).to(at::kFloat).mul(1.0 - smoothing_).add(smoothing_ / static_cast<double>(K));
  const auto dlogits = (at::softmax(logits, 1) - target).mul(nn::SpeedrunNet::kHeadScale);
  head.mutable_grad() = dlogits.t().mm(feat);
  const auto dfeat = dlogits.mm(head);
  auto d3 = at::zeros({B, cells, C3});
  d3.scatter_(1, cell.unsqueeze(1), dfeat.unsqueeze(1));
  at::Tensor dA = d3.to(T).view({B, in.size(2), in.size(3), C3}).permute({0, 3, 1, 2});  // channels-last

  // Backward through the groups, last first.
  const bool whiten_bias = net_.whiten_bias().requires_grad();
  for (int g = 2; g >= 0; --g) {
    auto& G = net_.group(g);
    auto& S = fused_->groups[g];
    const int64_t C = S.y2.size(1), rows = S.y2.numel() / C;
    std::vector<double> sdz(C), sdzx(C);
    k::norm_gelu_backward_sums(dA.data_ptr(), S.y2.data_ptr(), bf, rows, C, S.n2.mean.data_ptr<float>(),
                               S.n2.invstd.data_ptr<float>(), G.shift2.data_ptr<float>(), sdz.data(), sdzx.data());
    G.shift2.mutable_grad() = torch::tensor(std::vector<float>(sdz.begin(), sdz.end()));
    auto dy2 = at::empty_like(S.y2);
    k::norm_gelu_backward_apply(dA.data_ptr(), S.y2.data_ptr(), bf, rows, C, S.n2.mean.data_ptr<float>(),
                                S.n2.invstd.data_ptr<float>(), G.shift2.data_ptr<float>(), sdz.data(), sdzx.data(),
                                dy2.data_ptr(), nullptr, 0, 0, 0);
    auto [da1, dw2] = conv_backward(dy2, S.a1, G.conv2, S.w2, S.wino2, true, false);
    G.conv2.mutable_grad() = dw2;
    k::norm_gelu_backward_sums(da1.data_ptr(), S.pooled.data_ptr(), bf, rows, C, S.n1.mean.data_ptr<float>(),
                               S.n1.invstd.data_ptr<float>(), G.shift1.data_ptr<float>(), sdz.data(), sdzx.data());
    G.shift1.mutable_grad() = torch::tensor(std::vector<float>(sdz.begin(), sdz.end()));
    auto dy1 = at::empty({B, C, S.H, S.W}, S.pooled.options().memory_format(kCl));
    k::norm_gelu_backward_apply(da1.data_ptr(), S.pooled.data_ptr(), bf, rows, C, S.n1.mean.data_ptr<float>(),
                                S.n1.invstd.data_ptr<float>(), G.shift1.data_ptr<float>(), sdz.data(), sdzx.data(),
                                dy1.data_ptr(), S.where.data_ptr<uint8_t>(), B, S.H, S.W);
    const bool need_input = g > 0 || whiten_bias;
    auto [din, dw1] = conv_backward(dy1, S.in, G.conv1, S.w1, S.wino1, need_input, true);
    G.conv1.mutable_grad() = dw1;
    dA = din;
  }
  if (whiten_bias) {
    const int64_t C = z0.size(1);
    std::vector<double> s(C);
    k::gelu_backward_sum(dA.data_ptr(), z0.data_ptr(), bf, z0.numel() / C, C, s.data());
    net_.whiten_bias().mutable_grad() = torch::tensor(std::vector<float>(s.begin(), s.end()));
  }
  for (auto& S : fused_->groups) S = Fused::Group{};  // release the activations
  return r;
}

namespace {
thread_local ConvAlgorithm eval_conv = ConvAlgorithm::kAuto;  // SpeedrunEvalConv's
}  // namespace

SpeedrunEvalConv::SpeedrunEvalConv(ConvAlgorithm conv) : previous_(eval_conv) { eval_conv = conv; }
SpeedrunEvalConv::~SpeedrunEvalConv() { eval_conv = previous_; }

bool speedrun_eval_fused(nn::SpeedrunNet& net) {
  return net.whiten_weight().device().is_cpu() && k::available();
}

at::Tensor speedrun_eval_logits(nn::SpeedrunNet& net, const at::Tensor& images, bool bf16, ConvAlgorithm conv_algorithm) {
  BIRDPLANE_CHECK(speedrun_eval_fused(net), "the speedrun's fused evaluation needs AVX-512 and the CPU");
  BIRDPLANE_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == 32 && images.size(3) == 32,
                  "speedrun takes images [B,3,32,32], got [{}]", fmt::join(images.sizes(), ","));
  torch::NoGradGuard no_grad;
  const auto T = bf16 ? at::kBFloat16 : at::kFloat;
  auto cast = [&](const at::Tensor& t) { return t.to(T).contiguous(kCl); };
  const int64_t B = images.size(0);
  auto a = conv(cast(images), cast(net.whiten_weight()), net.whiten_bias().to(T), 0);
  k::gelu(a.data_ptr(), bf16, a.numel(), a.data_ptr());
  // 1/sqrt(running variance + eps), positive: the pool may come before the normalization.
  auto invstd = [](const at::Tensor& var) { return (var + nn::SpeedrunNet::kNormEps).rsqrt().contiguous(); };
  if (conv_algorithm == ConvAlgorithm::kAuto) conv_algorithm = eval_conv;
  const bool wino = conv_algorithm == ConvAlgorithm::kWinograd ||
                    (conv_algorithm == ConvAlgorithm::kAuto && bf16 && winograd::preferred());
  BIRDPLANE_CHECK_SETTING(!wino || (bf16 && winograd::available()), "conv",
                          "winograd: needs bf16 precision and a CPU with AVX512-BF16; use auto or direct");
  auto conv3 = [&](const at::Tensor& in, const at::Tensor& w) {
    return winograd_layer(wino, w.size(1), w.size(0)) ? winograd_conv(in, winograd_pack(w, false), w.size(0))
                                                      : conv(in, cast(w), {}, 1);
  };
  for (int g = 0; g < 3; ++g) {
    auto& G = net.group(g);
    const int64_t C = G.conv1.size(0), H = a.size(2), W = a.size(3);
    auto a1 = at::empty({B, C, H / 2, W / 2}, a.options().memory_format(kCl));
    const auto m1 = G.mean1.contiguous(), s1 = invstd(G.var1), b1 = G.shift1.contiguous();
    if (winograd_pooled_layer(wino, G.conv1.size(1), C)) {  // pooled as it is computed, then normalized in place
      at::Tensor no_where;
      winograd_conv_pool(a, winograd_pack(G.conv1, false), a1, no_where);
      k::norm_gelu(a1.data_ptr(), bf16, a1.numel() / C, C, m1.data_ptr<float>(), s1.data_ptr<float>(),
                   b1.data_ptr<float>(), a1.data_ptr());
    } else {
      const auto y1 = conv3(a, G.conv1);
      k::pool2_norm_gelu(y1.data_ptr(), bf16, B, H, W, C, m1.data_ptr<float>(), s1.data_ptr<float>(),
                         b1.data_ptr<float>(), a1.data_ptr());
    }
    a = conv3(a1, G.conv2);
    const auto m2 = G.mean2.contiguous(), s2 = invstd(G.var2), b2 = G.shift2.contiguous();
    k::norm_gelu(a.data_ptr(), bf16, a.numel() / C, C, m2.data_ptr<float>(), s2.data_ptr<float>(),
                 b2.data_ptr<float>(), a.data_ptr());
  }
  // The 3x3 max pool over the last 3x3 map (one output pixel), the head.
  const int64_t C3 = a.size(1), cells = a.size(2) * a.size(3);
  const auto feat = std::get<0>(a.permute({0, 2, 3, 1}).reshape({B, cells, C3}).max(1)).to(at::kFloat);
  return feat.mm(net.head().t()).mul(nn::SpeedrunNet::kHeadScale);
}

SpeedrunStepResult SpeedrunStep::run(const at::Tensor& x, const at::Tensor& y, torch::optim::Optimizer& optimizer) {
  auto r = gradients(x, y);
  optimizer.step();
  return r;
}

}  // namespace birdplane::train
