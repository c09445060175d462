#include "train/fused_convnet.h"

#include <algorithm>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "train/conv_kernels.h"
#include "train/linear_kernels.h"

namespace birdplane::train {

namespace {

at::Tensor parameter(const torch::OrderedDict<std::string, at::Tensor>& params, const std::string& name) {
  const auto* p = params.find(name);
  BIRDPLANE_CHECK(p && p->scalar_type() == at::kFloat && p->is_contiguous() && p->device().is_cpu(),
                  "the fused convnet step needs {} as a contiguous float32 CPU tensor", name);
  return *p;
}

// [O, C, 3, 3] -> [3][3][C][O rounded up to 16], zero beyond O: the forward kernel's layout.
at::Tensor pack_forward(const at::Tensor& w, const kernels::ConvPoolShape& s) {
  auto packed = at::zeros({3, 3, s.in_c, s.out_c_padded()}, w.options());
  packed.narrow(3, 0, s.out_c).copy_(w.permute({2, 3, 1, 0}));
  return packed;
}

// [O, C, 3, 3] -> [O][3][3 * C] (o, ky, kx * C + c): the input gradient's layout.
at::Tensor pack_backward(const at::Tensor& w) { return w.permute({0, 2, 3, 1}).contiguous(); }

// The weight gradient kernel's [O][3][3 * C] seen as [O, C, 3, 3].
at::Tensor unpack_grad(const at::Tensor& dw, int64_t in_c) {
  return dw.view({dw.size(0), 3, 3, in_c}).permute({0, 3, 1, 2});
}

// Where the forward pass of the two layers reads and writes (train/conv_kernels.h's layouts).
struct ForwardBuffers {
  float* xp;        ///< the images, padded NHWC [B, H+2, W+2, C0], zero borders
  float* a1p;       ///< tanh of the first layer's pooled maxima, in the interior of [B, H1+2, W1+2, C1], zero borders
  float* a2;        ///< tanh of the second layer's pooled maxima, NHWC [B, H2, W2, C2]
  uint8_t* where1;  ///< each maximum's window position, [B, H1, W1, C1]
  uint8_t* where2;  ///< [B, H2, W2, C2] (may be where1 when the backward pass needs neither)
};

// conv 3x3 -> 2x2 max pool -> tanh, twice, on the images x (NCHW, shape s1) with packed weights.
void forward_layers(const float* x, const kernels::ConvPoolShape& s1, const kernels::ConvPoolShape& s2,
                    const float* packed1, const float* bias1, const float* packed2, const float* bias2,
                    const ForwardBuffers& b) {
  kernels::nchw_to_padded_nhwc(x, s1.batch, s1.in_c, s1.in_h, s1.in_w, b.xp);
  const int64_t interior = s2.padded_row() + s2.in_c;  // pixel (0, 0) of image 0
  const kernels::PooledLayout out1{b.a1p + interior, s2.padded_image(), s2.padded_row(), s2.in_c};
  kernels::conv3x3_pool_forward(b.xp, s1, packed1, bias1, out1, b.where1, true);
  const int64_t h2 = s2.pooled_h(), w2 = s2.pooled_w(), c2 = s2.out_c;
  const kernels::PooledLayout out2{b.a2, h2 * w2 * c2, w2 * c2, c2};
  kernels::conv3x3_pool_forward(b.a1p, s2, packed2, bias2, out2, b.where2, true);
}

}  // namespace

std::string fused_convnet_unsupported(const nn::ConvNet& model, bool bf16) {
  if (model.kind() != nn::ConvNetKind::kNet && model.kind() != nn::ConvNetKind::kWidth)
    return fmt::format("it implements net and net-width among the convnets, not {}", model.spec().name);
  if (bf16) return "it runs the convnets in float32 only";
  if (!kernels::available()) return "its convnet step needs AVX-512, which this CPU lacks";
  if (!kernels::enabled()) return "BIRDPLANE_KERNELS=blas asks for ATen throughout, and its convnet step has no ATen version";
  return "";
}

bool fused_convnet_inference_applies(const nn::ConvNet& model, const at::Tensor& images) {
  if (at::GradMode::is_enabled() || at::autocast::is_cpu_enabled()) return false;
  const auto kind = model.kind();
  if (kind != nn::ConvNetKind::kNet && kind != nn::ConvNetKind::kWidth &&
      !(kind == nn::ConvNetKind::kDropout && !model.is_training()))
    return false;
  if (!kernels::available() || !kernels::enabled()) return false;
  return images.device().is_cpu() && images.scalar_type() == at::kFloat && images.dim() == 4 &&
         images.size(1) == model.spec().image_shape[0] && images.size(2) >= 4 && images.size(3) >= 4;
}

at::Tensor fused_convnet_features(const at::Tensor& images, const at::Tensor& conv1_w, const at::Tensor& conv1_b,
                                  const at::Tensor& conv2_w, const at::Tensor& conv2_b) {
  const int64_t batch = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t c0 = conv1_w.size(1), c1 = conv1_w.size(0), c2 = conv2_w.size(0);
  const kernels::ConvPoolShape whole1{batch, h, w, c0, c1};
  const kernels::ConvPoolShape whole2{batch, whole1.pooled_h(), whole1.pooled_w(), c1, c2};
  const int64_t h1 = whole1.pooled_h(), w1 = whole1.pooled_w(), h2 = whole2.pooled_h(), w2 = whole2.pooled_w();
  const auto w1c = conv1_w.contiguous(), b1c = conv1_b.contiguous(), w2c = conv2_w.contiguous(),
             b2c = conv2_b.contiguous();
  const auto packed1 = pack_forward(w1c, whole1), packed2 = pack_forward(w2c, whole2);
  const auto x = images.contiguous();
  auto features = at::empty({batch, c2 * h2 * w2}, x.options());
  constexpr int64_t kChunk = 256;  // buffers of a few MB, reused by the allocator from chunk to chunk
  const int64_t chunk = std::min(batch, kChunk);
  auto xp = at::zeros({chunk, h + 2, w + 2, c0}, x.options());  // zero borders: the convolution's padding
  auto a1p = at::zeros({chunk, h1 + 2, w1 + 2, c1}, x.options());
  auto a2 = at::empty({chunk, h2, w2, c2}, x.options());
  auto where = at::empty({chunk * h1 * w1 * std::max(c1, c2)}, x.options().dtype(at::kByte));
  const ForwardBuffers buffers{xp.data_ptr<float>(), a1p.data_ptr<float>(), a2.data_ptr<float>(),
                               where.data_ptr<uint8_t>(), where.data_ptr<uint8_t>()};
  for (int64_t start = 0; start < batch; start += chunk) {
    const int64_t n = std::min(chunk, batch - start);
    forward_layers(x.data_ptr<float>() + start * c0 * h * w, {n, h, w, c0, c1}, {n, h1, w1, c1, c2},
                   packed1.data_ptr<float>(), b1c.data_ptr<float>(), packed2.data_ptr<float>(), b2c.data_ptr<float>(),
                   buffers);
    features.narrow(0, start, n).copy_(a2.narrow(0, 0, n).permute({0, 3, 1, 2}).reshape({n, -1}));
  }
  return features;
}

}  // namespace birdplane::train

namespace birdplane::nn {

std::string ConvNet::fused_step_unsupported(const train::StepSetup& setup) const {
  if (kind() != ConvNetKind::kNet && kind() != ConvNetKind::kWidth)
    return fmt::format("it implements MLPs, net and net-width only, not {}", spec().name);
  std::string why = train::fused_gradients_unsupported(setup, ends_in_log_softmax());
  if (why.empty()) why = train::fused_convnet_unsupported(*this, setup.precision == train::Precision::kBf16);
  return why;
}

std::unique_ptr<train::FusedStep> ConvNet::make_fused_step(const train::StepSetup& setup) {
  const std::string why = fused_step_unsupported(setup);
  BIRDPLANE_CHECK(why.empty(), "the fused step cannot train {}: {}", spec().name, why);
  // Anything but plain SGD: the step writes the gradients and the optimizer updates (make_step).
  const bool write_gradients = !train::plain_sgd_unsupported(setup, ends_in_log_softmax()).empty();
  return std::make_unique<train::FusedConvNetStep>(*this, setup.optimizer.lr, setup.loss_options.label_smoothing,
                                                   write_gradients);
}

}  // namespace birdplane::nn

namespace birdplane::train {

FusedConvNetStep::FusedConvNetStep(nn::ConvNet& model, double lr, double label_smoothing, bool write_gradients)
    : FusedStep(lr), label_smoothing_(label_smoothing), write_gradients_(write_gradients) {
  const auto params = model.named_parameters();
  conv1_w_ = parameter(params, "conv1.weight");
  conv1_b_ = parameter(params, "conv1.bias");
  conv2_w_ = parameter(params, "conv2.weight");
  conv2_b_ = parameter(params, "conv2.bias");
  fc1_w_ = parameter(params, "fc1.weight");
  fc1_b_ = parameter(params, "fc1.bias");
  fc2_w_ = parameter(params, "fc2.weight");
  fc2_b_ = parameter(params, "fc2.bias");
  const std::string why = fused_convnet_unsupported(model, false);
  BIRDPLANE_CHECK(why.empty(), "the fused step cannot train {}: {}", model.spec().name, why);
  BIRDPLANE_CHECK(conv1_w_.dim() == 4 && conv1_w_.size(2) == 3 && conv1_w_.size(3) == 3 && conv2_w_.dim() == 4 &&
                      conv2_w_.size(1) == conv1_w_.size(0) && conv2_w_.size(2) == 3 && conv2_w_.size(3) == 3,
                  "the fused convnet step needs two 3x3 convolutions, the second reading the first");
}

at::Tensor FusedConvNetStep::buffer(size_t slot, at::IntArrayRef shape, at::ScalarType dtype, bool zeroed) {
  if (buffers_.size() <= slot) buffers_.resize(slot + 1);
  auto& b = buffers_[slot];
  if (!b.defined() || b.size(0) < shape[0] || b.sizes().slice(1) != shape.slice(1) || b.scalar_type() != dtype)
    b = at::zeros(shape, at::TensorOptions().dtype(dtype));  // zero: the padded buffers' borders stay so
  auto view = b.narrow(0, 0, shape[0]);
  if (zeroed) view.zero_();
  return view;
}

FusedStep::Result FusedConvNetStep::step(const at::Tensor& images, const at::Tensor& y) {
  torch::NoGradGuard no_grad;
  BIRDPLANE_CHECK(images.dim() == 4 && images.size(1) == conv1_w_.size(1) && images.size(2) >= 4 && images.size(3) >= 4,
                  "the fused convnet step takes images [B, {}, H >= 4, W >= 4]", conv1_w_.size(1));
  const int64_t batch = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t c0 = conv1_w_.size(1), c1 = conv1_w_.size(0), c2 = conv2_w_.size(0);
  const kernels::ConvPoolShape s1{batch, h, w, c0, c1};
  const kernels::ConvPoolShape s2{batch, s1.pooled_h(), s1.pooled_w(), c1, c2};
  const int64_t h1 = s1.pooled_h(), w1 = s1.pooled_w(), h2 = s2.pooled_h(), w2 = s2.pooled_w();
  const auto floats = at::TensorOptions().dtype(at::kFloat);

  // Forward. The images in padded NHWC; each layer's tanh of the pooled maxima (and where the maxima
  // came from). The padded buffers' borders are zero from their allocation and never written; their
  // interiors are overwritten every step. The first layer writes into the interior of the second
  // layer's padded input, whose gradient (same layout) the backward pass reads there too.
  const int64_t interior = s2.padded_row() + c1;  // pixel (0, 0) of image 0
  auto xp = buffer(0, {batch, h + 2, w + 2, c0}, at::kFloat, false);
  auto a1p = buffer(1, {batch, h1 + 2, w1 + 2, c1}, at::kFloat, false);
  auto where1 = buffer(2, {batch, h1, w1, c1}, at::kByte, false);
  auto a2 = buffer(3, {batch, h2, w2, c2}, at::kFloat, false);
  auto where2 = buffer(4, {batch, h2, w2, c2}, at::kByte, false);
  {
    const auto packed1 = pack_forward(conv1_w_, s1), packed2 = pack_forward(conv2_w_, s2);
    forward_layers(images.contiguous().data_ptr<float>(), s1, s2, packed1.data_ptr<float>(), conv1_b_.data_ptr<float>(),
                   packed2.data_ptr<float>(), conv2_b_.data_ptr<float>(),
                   {xp.data_ptr<float>(), a1p.data_ptr<float>(), a2.data_ptr<float>(), where1.data_ptr<uint8_t>(),
                    where2.data_ptr<uint8_t>()});
  }
  // fc1 reads the activations in the book's order, flattened from [B, C, H, W].
  const auto flat = a2.permute({0, 3, 1, 2}).reshape({batch, -1}).contiguous();
  const auto hidden = at::addmm(fc1_b_, flat, fc1_w_.t()).tanh_();
  const auto logits = at::addmm(fc2_b_, hidden, fc2_w_.t());
  Result r;
  const auto g = softmax_loss_grad(logits.contiguous(), y, r, label_smoothing_);

  // Backward, every gradient from the weights before their update.
  const auto d_hidden = at::tanh_backward(at::mm(g, fc2_w_), hidden);
  const auto d_flat = at::mm(d_hidden, fc1_w_);
  const auto d_m2 = at::tanh_backward(d_flat.view({batch, c2, h2, w2}).permute({0, 2, 3, 1}), a2).contiguous();
  auto dw2 = at::empty({c2, 3, 3 * c1}, floats), db2 = at::empty({c2}, floats);
  const kernels::PooledGrad g2{d_m2.data_ptr<float>(), nullptr, h2 * w2 * c2, w2 * c2, c2};
  kernels::conv3x3_pool_weight_grad(a1p.data_ptr<float>(), s2, g2, where2.data_ptr<uint8_t>(), dw2.data_ptr<float>(),
                                    db2.data_ptr<float>());
  auto d_a1p = buffer(5, {batch, h1 + 2, w1 + 2, c1}, at::kFloat, true);
  {
    const auto back = pack_backward(conv2_w_);
    kernels::conv3x3_pool_input_grad(d_m2.data_ptr<float>(), where2.data_ptr<uint8_t>(), s2, back.data_ptr<float>(),
                                      d_a1p.data_ptr<float>());
  }
  // The first layer's pooled gradient is d_a1p's interior times 1 - a1^2, applied by the kernel as it reads.
  auto dw1 = at::empty({c1, 3, 3 * c0}, floats), db1 = at::empty({c1}, floats);
  const kernels::PooledGrad g1{d_a1p.data_ptr<float>() + interior, a1p.data_ptr<float>() + interior,
                               s2.padded_image(), s2.padded_row(), c1};
  kernels::conv3x3_pool_weight_grad(xp.data_ptr<float>(), s1, g1, where1.data_ptr<uint8_t>(), dw1.data_ptr<float>(),
                                    db1.data_ptr<float>());

  if (write_gradients_) {  // for the optimizer: each gradient in its parameter's layout
    fc2_w_.mutable_grad() = at::mm(g.t(), hidden);
    fc2_b_.mutable_grad() = g.sum(0);
    fc1_w_.mutable_grad() = at::mm(d_hidden.t(), flat);
    fc1_b_.mutable_grad() = d_hidden.sum(0);
    conv2_w_.mutable_grad() = unpack_grad(dw2, c1).contiguous();
    conv2_b_.mutable_grad() = db2;
    conv1_w_.mutable_grad() = unpack_grad(dw1, c0).contiguous();
    conv1_b_.mutable_grad() = db1;
    return r;
  }
  // Plain SGD in place; the linear layers' weights take their update straight from the product.
  fc2_w_.addmm_(g.t(), hidden, 1.0, -lr_);
  fc2_b_.sub_(g.sum(0), lr_);
  fc1_w_.addmm_(d_hidden.t(), flat, 1.0, -lr_);
  fc1_b_.sub_(d_hidden.sum(0), lr_);
  conv2_w_.sub_(unpack_grad(dw2, c1), lr_);
  conv2_b_.sub_(db2, lr_);
  conv1_w_.sub_(unpack_grad(dw1, c0), lr_);
  conv1_b_.sub_(db1, lr_);
  return r;
}

}  // namespace birdplane::train
