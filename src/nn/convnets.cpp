#include "birdplane/nn/convnets.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "nn/pool.h"
#include "train/fused_convnet.h"

namespace birdplane::nn {
namespace {

// The book's ResBlock: convolution without bias, batch norm, ReLU, and the skip connection.
struct ResBlockImpl : torch::nn::Module {
  explicit ResBlockImpl(int64_t channels) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1).bias(false)));
    batch_norm = register_module("batch_norm", torch::nn::BatchNorm2d(channels));
    // The book's initialization: Kaiming normal for ReLU, batch-norm weight 0.5 and bias 0.
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_normal_(conv->weight, 0, torch::kFanIn, torch::kReLU);
    batch_norm->weight.fill_(0.5);
    batch_norm->bias.zero_();
  }
  at::Tensor forward(const at::Tensor& x) { return torch::relu(batch_norm->forward(conv->forward(x))) + x; }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d batch_norm{nullptr};
};

const std::vector<std::pair<std::string, ConvNetKind>>& kinds() {
  static const std::vector<std::pair<std::string, ConvNetKind>> k = {
      {"net", ConvNetKind::kNet},           {"net-width", ConvNetKind::kWidth},
      {"net-dropout", ConvNetKind::kDropout}, {"net-batchnorm", ConvNetKind::kBatchNorm},
      {"net-depth", ConvNetKind::kDepth},   {"net-res", ConvNetKind::kRes},
      {"net-res-deep", ConvNetKind::kResDeep}};
  return k;
}

torch::nn::Conv2d conv3x3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}

std::string shape(int64_t c, int64_t h, int64_t w) { return fmt::format("[B, {}, {}, {}]", c, h, w); }

// 2x2 max pooling: birdplane's one-pass kernel for float32 on the CPU, LibTorch's elsewhere (CUDA,
// bfloat16 under autocast).
at::Tensor pool(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat ? max_pool2x2(x) : torch::max_pool2d(x, 2);
}

// The book's pool(act(x)) computed as act(pool(x)): the same values, since tanh and ReLU never
// decrease, with the activation (and its backward pass) on a quarter of the elements.
at::Tensor pool_tanh(const at::Tensor& x) { return torch::tanh(pool(x)); }
at::Tensor pool_relu(const at::Tensor& x) { return torch::relu(pool(x)); }

}  // namespace

const std::vector<std::string>& convnet_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, kind] : kinds()) n.push_back(name);
    return n;
  }();
  return names;
}

ConvNetKind convnet_kind(const std::string& name) {
  for (const auto& [n, kind] : kinds())
    if (n == name) return kind;
  fail_setting("model", "'{}' is not one of the chapter's convnets", name);
}

ConvNet::ConvNet(ModelSpec spec_in) : Classifier(std::move(spec_in)), kind_(convnet_kind(spec().name)) {
  const auto& s = spec();
  BIRDPLANE_CHECK(s.image_shape.size() == 3, "{} takes images [C,H,W], not [{}]", s.name, fmt::join(s.image_shape, ","));
  const int64_t in = s.image_shape[0], h = s.image_shape[1], w = s.image_shape[2];
  const bool halves = kind_ != ConvNetKind::kNet && kind_ != ConvNetKind::kResDeep;
  channels_ = kind_ == ConvNetKind::kNet ? 16 : s.channels;
  if (kind_ != ConvNetKind::kNet) {
    BIRDPLANE_CHECK_SETTING(s.channels >= 2 && s.channels <= 4096, "channels", "{} is not allowed; expected 2 to 4096",
                            s.channels);
    BIRDPLANE_CHECK_SETTING(!halves || s.channels % 2 == 0, "channels",
                            "{} is odd; {} halves it for its second convolution, so it must be even", s.channels, s.name);
  }
  if (kind_ == ConvNetKind::kResDeep)
    BIRDPLANE_CHECK_SETTING(s.blocks >= 1 && s.blocks <= 1000, "blocks", "{} is not allowed; expected 1 to 1000",
                            s.blocks);
  const int64_t pools = (kind_ == ConvNetKind::kDepth || kind_ == ConvNetKind::kRes) ? 3 : 2;
  const int64_t scale = int64_t{1} << pools;
  BIRDPLANE_CHECK_SETTING(h >= scale && w >= scale, "model", "{} pools {} times and needs images of at least {}x{}, got {}x{}",
                          s.name, pools, scale, scale, h, w);
  const int64_t c2 = kind_ == ConvNetKind::kResDeep ? channels_ : channels_ / 2;
  flat_ = (h / scale) * (w / scale) * c2;

  conv1_ = register_module("conv1", conv3x3(in, channels_));
  if (kind_ == ConvNetKind::kBatchNorm) conv1_bn_ = register_module("conv1_batchnorm", torch::nn::BatchNorm2d(channels_));
  if (kind_ == ConvNetKind::kDropout)
    conv1_dropout_ = register_module("conv1_dropout", torch::nn::Dropout2d(torch::nn::Dropout2dOptions(0.4)));
  if (kind_ == ConvNetKind::kResDeep) {
    // The book builds nn.Sequential(*(n_blocks * [ResBlock(n_chans1)])): one block, applied n_blocks
    // times, its parameters shared. It is registered once (so the optimizer sees each parameter
    // once); state_dict() lists it under every index, as Python's does. The book's authors have since
    // called the sharing a mistake (github.com/deep-learning-with-pytorch/dlwpt-code, issue 89):
    // shared_blocks false builds what they meant, a block of its own at each depth.
    auto holder = std::make_shared<torch::nn::Module>();
    for (int64_t i = 0; i < (s.shared_blocks ? 1 : s.blocks); ++i) {
      auto block = std::make_shared<ResBlockImpl>(channels_);
      holder->register_module(std::to_string(i), block);
      res_convs_.push_back(block->conv);
      res_bns_.push_back(block->batch_norm);
    }
    register_module("resblocks", holder);
  } else {
    conv2_ = register_module("conv2", conv3x3(channels_, c2));
  }
  if (kind_ == ConvNetKind::kBatchNorm) conv2_bn_ = register_module("conv2_batchnorm", torch::nn::BatchNorm2d(c2));
  if (kind_ == ConvNetKind::kDropout)
    conv2_dropout_ = register_module("conv2_dropout", torch::nn::Dropout2d(torch::nn::Dropout2dOptions(0.4)));
  if (kind_ == ConvNetKind::kDepth || kind_ == ConvNetKind::kRes) conv3_ = register_module("conv3", conv3x3(c2, c2));
  fc1_ = register_module("fc1", torch::nn::Linear(flat_, 32));
  fc2_ = register_module("fc2", torch::nn::Linear(32, s.num_classes));
}

at::Tensor ConvNet::logits(const at::Tensor& x) {
  at::Tensor out;
  // Without autograd (evaluation, prediction) net and net-width run their two layers on the fused
  // step's AVX-512 kernels: ATen's convolution is an order of magnitude slower on some CPUs.
  // The fully connected layers below are the same for both.
  if (train::fused_convnet_inference_applies(*this, x))
    out = train::fused_convnet_features(x, conv1_->weight, conv1_->bias, conv2_->weight, conv2_->bias);
  else switch (kind_) {
    case ConvNetKind::kNet:
    case ConvNetKind::kWidth:
    case ConvNetKind::kDropout:
      out = pool_tanh(conv1_->forward(x));
      if (conv1_dropout_) out = conv1_dropout_->forward(out);
      out = pool_tanh(conv2_->forward(out));
      if (conv2_dropout_) out = conv2_dropout_->forward(out);
      break;
    case ConvNetKind::kBatchNorm:
      out = pool_tanh(conv1_bn_->forward(conv1_->forward(x)));
      out = pool_tanh(conv2_bn_->forward(conv2_->forward(out)));
      break;
    case ConvNetKind::kDepth:
      out = pool_relu(conv1_->forward(x));
      out = pool_relu(conv2_->forward(out));
      out = pool_relu(conv3_->forward(out));
      break;
    case ConvNetKind::kRes:
      out = pool_relu(conv1_->forward(x));
      out = pool_relu(conv2_->forward(out));
      out = pool(torch::relu(conv3_->forward(out)) + out);  // the skip joins before the pooling
      break;
    case ConvNetKind::kResDeep:
      out = pool_relu(conv1_->forward(x));
      for (int64_t i = 0; i < spec().blocks; ++i) {
        const size_t b = spec().shared_blocks ? 0 : static_cast<size_t>(i);
        out = torch::relu(res_bns_[b]->forward(res_convs_[b]->forward(out))) + out;
      }
      out = pool(out);
      break;
  }
  out = out.reshape({out.size(0), flat_});
  return fc2_->forward(kind_ == ConvNetKind::kDepth || kind_ == ConvNetKind::kRes || kind_ == ConvNetKind::kResDeep
                           ? torch::relu(fc1_->forward(out))
                           : torch::tanh(fc1_->forward(out)));
}

std::vector<std::pair<std::string, at::Tensor>> ConvNet::state_dict() const {
  auto entries = Classifier::state_dict();
  if (kind_ != ConvNetKind::kResDeep || !spec().shared_blocks) return entries;
  // Every index of the book's shared block, as its state_dict lists them.
  std::vector<std::pair<std::string, at::Tensor>> out;
  const std::string first = "resblocks.0.";
  for (const auto& [key, t] : entries) {
    if (key.rfind(first, 0) != 0) continue;
    for (int64_t i = 0; i < spec().blocks; ++i)
      out.emplace_back(fmt::format("resblocks.{}.{}", i, key.substr(first.size())), t);
  }
  for (const auto& e : entries)
    if (e.first.rfind(first, 0) != 0) out.push_back(e);
  return out;
}

std::vector<LayerRow> ConvNet::layer_rows() const {
  const auto& s = spec();
  int64_t c = s.image_shape[0], h = s.image_shape[1], w = s.image_shape[2];
  std::vector<LayerRow> rows;
  rows.push_back({"", "input", shape(c, h, w), 0});
  auto params = [](const torch::nn::Module& m) { return count_parameters(m); };
  auto conv = [&](const std::string& name, const torch::nn::Conv2d& m) {
    c = m->options.out_channels();
    rows.push_back({name, fmt::format("Conv2d({}, {}, 3, padding=1{})", m->options.in_channels(), c,
                                      m->options.bias() ? "" : ", bias=False"),
                    shape(c, h, w), params(*m)});
  };
  auto simple = [&](const std::string& name, const std::string& layer) { rows.push_back({name, layer, shape(c, h, w), 0}); };
  auto pool = [&](const std::string& name) {
    h /= 2;
    w /= 2;
    simple(name, "MaxPool2d(2)");
  };
  const bool relu = kind_ == ConvNetKind::kDepth || kind_ == ConvNetKind::kRes || kind_ == ConvNetKind::kResDeep;
  const std::string act = relu ? "ReLU()" : "Tanh()";
  conv("conv1", conv1_);
  if (conv1_bn_) rows.push_back({"conv1_batchnorm", fmt::format("BatchNorm2d({})", c), shape(c, h, w), params(*conv1_bn_)});
  simple("act1", act);
  pool("pool1");
  if (conv1_dropout_) simple("conv1_dropout", "Dropout2d(p=0.4)");
  if (kind_ == ConvNetKind::kResDeep) {
    int64_t block_params = 0;
    for (size_t i = 0; i < res_convs_.size(); ++i) block_params += params(*res_convs_[i]) + params(*res_bns_[i]);
    rows.push_back({"resblocks", fmt::format("{} x ResBlock(Conv2d({}, {}, 3, bias=False), BatchNorm2d, ReLU, +x), {}",
                                             s.blocks, c, c, s.shared_blocks ? "shared" : "one per depth"),
                    shape(c, h, w), block_params});
    pool("pool2");
  } else {
    conv("conv2", conv2_);
    if (conv2_bn_) rows.push_back({"conv2_batchnorm", fmt::format("BatchNorm2d({})", c), shape(c, h, w), params(*conv2_bn_)});
    simple("act2", act);
    pool("pool2");
    if (conv2_dropout_) simple("conv2_dropout", "Dropout2d(p=0.4)");
  }
  if (conv3_) {
    conv("conv3", conv3_);
    simple("act3", kind_ == ConvNetKind::kRes ? "ReLU() + pool2's output" : "ReLU()");
    pool("pool3");
  }
  rows.push_back({"view", "flatten", fmt::format("[B, {}]", flat_), 0});
  rows.push_back({"fc1", fmt::format("Linear({}, 32)", flat_), "[B, 32]", params(*fc1_)});
  rows.push_back({"act", act, "[B, 32]", 0});
  rows.push_back({"fc2", fmt::format("Linear(32, {})", s.num_classes), fmt::format("[B, {}]", s.num_classes), params(*fc2_)});
  return rows;
}

}  // namespace birdplane::nn
