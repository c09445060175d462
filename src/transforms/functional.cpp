#include "birdplane/transforms/functional.h"

#include <cmath>

#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/memory.h"
#include <ATen/Parallel.h>

namespace birdplane::transforms::functional {
namespace {

bool is_channel_count(int64_t n) { return n == 1 || n == 3 || n == 4; }

// Per-channel values as a [C,1,1] tensor of `like`'s dtype; one value broadcasts to all channels.
at::Tensor channel_tensor(const std::vector<double>& values, int64_t channels, const char* what,
                          const at::Tensor& like) {
  BIRDPLANE_CHECK(values.size() == 1 || static_cast<int64_t>(values.size()) == channels,
                  "Normalize: {} has {} values; the image has {} channels (give one value per "
                  "channel, or one for all)",
                  what, values.size(), channels);
  return torch::tensor(values, torch::kFloat64).to(like.scalar_type()).view({-1, 1, 1});
}

void check_normalize_args(const at::Tensor& image, const std::vector<double>& std) {
  BIRDPLANE_CHECK(image.dim() == 3 || image.dim() == 4,
                  "Normalize expects an image [C,H,W] or a batch [B,C,H,W], got {} dims",
                  image.dim());
  for (size_t i = 0; i < std.size(); ++i) {
    BIRDPLANE_CHECK(std[i] != 0.0 && std::isfinite(std[i]),
                    "Normalize: std[{}] is {}; a standard deviation must be finite and not 0 "
                    "(it divides)",
                    i, std[i]);
  }
}

}  // namespace

at::Tensor to_tensor(const at::Tensor& image, Layout layout) {
  BIRDPLANE_CHECK(image.dim() >= 2 && image.dim() <= 4,
                  "ToTensor expects [H,W], [C,H,W], [H,W,C] or a batch of those, got {} dims",
                  image.dim());
  at::Tensor x = image;
  if (x.dim() == 2) x = x.unsqueeze(0);  // [H,W] -> [1,H,W]
  const bool batched = x.dim() == 4;
  if (layout == Layout::kAuto) {
    const int64_t first = x.size(batched ? 1 : 0);
    const int64_t last = x.size(-1);
    layout = (is_channel_count(last) && !is_channel_count(first)) ? Layout::kHWC : Layout::kCHW;
  }
  if (layout == Layout::kHWC) x = batched ? x.permute({0, 3, 1, 2}) : x.permute({2, 0, 1});
  if (x.scalar_type() == torch::kUInt8) return x.to(torch::kFloat32).div_(255.0f).contiguous();
  BIRDPLANE_CHECK(x.is_floating_point(), "ToTensor expects uint8 or float pixels, got {}",
                  c10::toString(x.scalar_type()));
  return x.to(torch::kFloat32).contiguous();
}

at::Tensor normalize(const at::Tensor& image, const std::vector<double>& mean,
                     const std::vector<double>& std, bool inplace) {
  check_normalize_args(image, std);
  BIRDPLANE_CHECK(image.is_floating_point(),
                  "Normalize expects a float image (apply ToTensor first), got {}",
                  c10::toString(image.scalar_type()));
  const int64_t channels = image.size(-3);
  auto m = channel_tensor(mean, channels, "mean", image);
  auto s = channel_tensor(std, channels, "std", image);
  if (inplace) return image.sub_(m).div_(s);
  return (image - m) / s;
}

at::Tensor to_normalized(const at::Tensor& image_u8, const std::vector<double>& mean,
                         const std::vector<double>& std) {
  check_normalize_args(image_u8, std);
  BIRDPLANE_CHECK(image_u8.scalar_type() == torch::kUInt8,
                  "to_normalized expects uint8 pixels, got {}", c10::toString(image_u8.scalar_type()));
  const int64_t channels = image_u8.size(-3);
  BIRDPLANE_CHECK(mean.size() == 1 || static_cast<int64_t>(mean.size()) == channels,
                  "Normalize: mean has {} values; the image has {} channels", mean.size(), channels);
  BIRDPLANE_CHECK(std.size() == 1 || static_cast<int64_t>(std.size()) == channels,
                  "Normalize: std has {} values; the image has {} channels", std.size(), channels);
  std::vector<double> scale(channels), shift(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double m = mean.size() == 1 ? mean[0] : mean[c];
    const double s = std.size() == 1 ? std[0] : std[c];
    scale[c] = 1.0 / (255.0 * s);
    shift[c] = -m / s;
  }
  // One fused pass: out = x * scale[c] + shift[c]. Each image's C*H*W block must be contiguous;
  // images may sit at any stride (the dataset's records are 3073 bytes apart).
  at::Tensor x = image_u8;
  const bool batched = x.dim() == 4;
  if (!batched) x = x.unsqueeze(0);
  const int64_t n = x.size(0), plane = x.size(2) * x.size(3);
  if (x.stride(3) != 1 || x.stride(2) != x.size(3) || x.stride(1) != plane) x = x.contiguous();
  at::Tensor out = data::empty_huge({n, channels, x.size(2), x.size(3)}, torch::kFloat32);
  const uint8_t* src = x.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const int64_t image_stride = x.stride(0);
  std::vector<float> sc(scale.begin(), scale.end()), sh(shift.begin(), shift.end());
  // Threads only pay off on large inputs; a training batch is converted on the loader's thread
  // alone, so it does not compete with the matmuls for cores.
  const int64_t grain = n * channels * plane >= (int64_t{1} << 21) ? 16 : n;
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* in = src + i * image_stride + c * plane;
        float* o = dst + (i * channels + c) * plane;
        const float a = sc[c], b = sh[c];
        for (int64_t k = 0; k < plane; ++k) o[k] = static_cast<float>(in[k]) * a + b;
      }
    }
  });
  return batched ? out : out.squeeze(0);
}

}  // namespace birdplane::transforms::functional
