#include "birdplane/nn/speedrun_net.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::nn {
namespace {

constexpr int64_t kWidths[3] = {64, 256, 256};

// A 3x3 convolution's weight as PyTorch's Conv2d initializes it (Kaiming uniform, a = sqrt(5)), then
// the identity on the first `in` filters (torch.nn.init.dirac_ on weight[:in]): at the start each group
// passes its input through to those channels.
at::Tensor identity_conv(int64_t in, int64_t out) {
  auto w = torch::empty({out, in, 3, 3});
  torch::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
  w.slice(0, 0, std::min(in, out)).zero_();
  for (int64_t i = 0; i < std::min(in, out); ++i) w[i][i][1][1] = 1.0;
  return w;
}

// Batch norm as the recipe uses it: the scale is a fixed buffer-like parameter (no gradient).
at::Tensor norm(const at::Tensor& x, at::Tensor& scale, at::Tensor& shift, at::Tensor& mean, at::Tensor& var,
                at::Tensor& count, bool training) {
  if (training) {
    torch::NoGradGuard no_grad;
    count.add_(1);
  }
  return at::batch_norm(x, scale, shift, mean, var, training, SpeedrunNet::kNormMomentum, SpeedrunNet::kNormEps,
                        false);
}

}  // namespace

SpeedrunNet::SpeedrunNet(ModelSpec spec_in) : Classifier(std::move(spec_in)) {
  const auto& s = spec();
  BIRDPLANE_CHECK_SETTING(s.image_shape == std::vector<int64_t>({3, 32, 32}), "model",
                          "speedrun takes 3x32x32 images (CIFAR-10's), not {}", fmt::join(s.image_shape, "x"));
  torch::NoGradGuard no_grad;
  auto whiten = register_module("whiten", std::make_shared<torch::nn::Module>());
  whiten_weight_ = torch::empty({kWhitenFilters, 3, 2, 2});
  torch::nn::init::kaiming_uniform_(whiten_weight_, std::sqrt(5.0));
  whiten_weight_ = whiten->register_parameter("weight", whiten_weight_, /*requires_grad=*/false);
  whiten_bias_ = whiten->register_parameter("bias", torch::zeros({kWhitenFilters}));
  int64_t in = kWhitenFilters;
  for (int g = 0; g < 3; ++g) {
    auto group = register_module(fmt::format("group{}", g + 1), std::make_shared<torch::nn::Module>());
    auto& G = groups_[g];
    const int64_t out = kWidths[g];
    auto add_norm = [&](const char* name, at::Tensor& scale, at::Tensor& shift, at::Tensor& mean, at::Tensor& var,
                        at::Tensor& count) {
      auto m = group->register_module(name, std::make_shared<torch::nn::Module>());
      scale = m->register_parameter("weight", torch::ones({out}), /*requires_grad=*/false);
      shift = m->register_parameter("bias", torch::zeros({out}));
      mean = m->register_buffer("running_mean", torch::zeros({out}));
      var = m->register_buffer("running_var", torch::ones({out}));
      count = m->register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
    };
    G.conv1 = group->register_module("conv1", std::make_shared<torch::nn::Module>())
                  ->register_parameter("weight", identity_conv(in, out));
    add_norm("norm1", G.scale1, G.shift1, G.mean1, G.var1, G.count1);
    G.conv2 = group->register_module("conv2", std::make_shared<torch::nn::Module>())
                  ->register_parameter("weight", identity_conv(out, out));
    add_norm("norm2", G.scale2, G.shift2, G.mean2, G.var2, G.count2);
    in = out;
  }
  auto head = torch::empty({s.num_classes, in});
  torch::nn::init::kaiming_uniform_(head, std::sqrt(5.0));
  head_ = register_module("head", std::make_shared<torch::nn::Module>())->register_parameter("weight", head);
}

at::Tensor SpeedrunNet::logits(const at::Tensor& images) {
  BIRDPLANE_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == 32 && images.size(3) == 32,
                  "speedrun takes images [B,3,32,32], got [{}]", fmt::join(images.sizes(), ","));
  const bool training = is_training();
  auto x = at::gelu(at::conv2d(images, whiten_weight_, whiten_bias_));
  for (auto& g : groups_) {
    x = at::max_pool2d(at::conv2d(x, g.conv1, {}, 1, 1), {2, 2});
    x = at::gelu(norm(x, g.scale1, g.shift1, g.mean1, g.var1, g.count1, training));
    x = at::conv2d(x, g.conv2, {}, 1, 1);
    x = at::gelu(norm(x, g.scale2, g.shift2, g.mean2, g.var2, g.count2, training));
  }
  x = at::max_pool2d(x, {3, 3}).flatten(1);
  return at::linear(x, head_).mul(kHeadScale);
}

std::vector<LayerRow> SpeedrunNet::layer_rows() const {
  auto shape = [](int64_t c, int64_t h) { return fmt::format("[B, {}, {}, {}]", c, h, h); };
  std::vector<LayerRow> rows = {{"", "input", shape(3, 32), 0},
                                {"whiten", "Conv2d(3, 24, 2), fixed whitening filters; GELU", shape(24, 31),
                                 whiten_weight_.numel() + whiten_bias_.numel()}};
  int64_t in = kWhitenFilters, size = 31;
  for (int g = 0; g < 3; ++g) {
    const int64_t out = kWidths[g];
    size /= 2;
    rows.push_back({fmt::format("group{}.conv1", g + 1),
                    fmt::format("Conv2d({}, {}, 3, padding 1), MaxPool2d(2), BatchNorm2d, GELU", in, out),
                    shape(out, size), groups_[g].conv1.numel() + 2 * out});
    rows.push_back({fmt::format("group{}.conv2", g + 1),
                    fmt::format("Conv2d({}, {}, 3, padding 1), BatchNorm2d, GELU", out, out), shape(out, size),
                    groups_[g].conv2.numel() + 2 * out});
    in = out;
  }
  rows.push_back({"pool", "MaxPool2d(3), flatten", fmt::format("[B, {}]", in), 0});
  rows.push_back({"head", fmt::format("Linear({}, {}, bias=False), x 1/9", in, spec().num_classes),
                  fmt::format("[B, {}]", spec().num_classes), head_.numel()});
  return rows;
}

void SpeedrunNet::init_whitening(const at::Tensor& images, double eps) {
  BIRDPLANE_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(0) > 0,
                  "whitening: expected float images [N,3,H,W], got [{}]", fmt::join(images.sizes(), ","));
  torch::NoGradGuard no_grad;
  // The 12x12 covariance of every 2x2 patch (channel-major, as unfold orders them), summed in double in
  // chunks so that 5,000 images do not need half a gigabyte of patches at once.
  auto cov = torch::zeros({12, 12}, torch::kDouble);
  int64_t count = 0;
  for (int64_t start = 0; start < images.size(0); start += 256) {
    auto x = images.slice(0, start, std::min(images.size(0), start + 256)).to(torch::kDouble);
    auto p = x.unfold(2, 2, 1).unfold(3, 2, 1).permute({0, 2, 3, 1, 4, 5}).reshape({-1, 12});
    cov += p.t().mm(p);
    count += p.size(0);
  }
  cov /= static_cast<double>(count);
  auto [values, vectors] = at::linalg_eigh(cov);
  values = values.flip(0);          // largest first
  vectors = vectors.t().flip(0);    // one eigenvector a row
  auto filters = (vectors / (values + eps).sqrt().unsqueeze(1)).reshape({12, 3, 2, 2}).to(torch::kFloat);
  whiten_weight_.copy_(torch::cat({filters, -filters}));
}

std::vector<std::pair<std::string, at::Tensor>> SpeedrunNet::trainable() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters())
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace birdplane::nn
