#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/batch.h"

#include <cmath>

#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/huge_buffers.h"
#include "transforms/internal.h"
#include <ATen/Parallel.h>

namespace birdplane::transforms::functional {
namespace {

bool is_channel_count(int64_t n) { return n == 1 || n == 3 || n == 4; }

// One value per channel: `values` itself, or its single value repeated.
std::vector<double> per_channel(const std::vector<double>& values, int64_t channels, const char* what) {
  BIRDPLANE_CHECK(values.size() == 1 || static_cast<int64_t>(values.size()) == channels,
                  "Normalize: {} has {} values; the image has {} channels (give one value per "
                  "channel, or one for all)",
                  what, values.size(), channels);
  return values.size() == 1 ? std::vector<double>(static_cast<size_t>(channels), values[0]) : values;
}

// Per-channel values as a [C,1,1] tensor of `like`'s dtype.
at::Tensor channel_tensor(const std::vector<double>& values, int64_t channels, const char* what,
                          const at::Tensor& like) {
  return torch::tensor(per_channel(values, channels, what), torch::kFloat64).to(like.scalar_type()).view({-1, 1, 1});
}

void check_normalize_args(const at::Tensor& image, const std::vector<double>& std) {
  check_image(image, "Normalize");
  check_std(std);
}

}  // namespace

void check_std(const std::vector<double>& std) {
  for (size_t i = 0; i < std.size(); ++i) {
    BIRDPLANE_CHECK(std[i] != 0.0 && std::isfinite(std[i]),
                    "Normalize: std[{}] is {}; a standard deviation must be finite and not 0 "
                    "(it divides)",
                    i, std[i]);
  }
}

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
  const auto m = per_channel(mean, channels, "mean"), s = per_channel(std, channels, "std");
  std::vector<float> sc(static_cast<size_t>(channels)), sh(static_cast<size_t>(channels));
  for (size_t c = 0; c < sc.size(); ++c) {
    sc[c] = static_cast<float>(1.0 / (255.0 * s[c]));
    sh[c] = static_cast<float>(-m[c] / s[c]);
  }
  // One fused pass: out = x * sc[c] + sh[c], reading images at whatever stride they sit.
  const bool batched = image_u8.dim() == 4;
  at::Tensor x = data::packed_images(batched ? image_u8 : image_u8.unsqueeze(0));
  const int64_t n = x.size(0), plane = x.size(2) * x.size(3);
  at::Tensor out = data::empty_huge({n, channels, x.size(2), x.size(3)}, torch::kFloat32);
  const uint8_t* src = x.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const int64_t image_stride = x.stride(0);
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

namespace birdplane::transforms {

BatchTransform normalize_batches(std::vector<double> mean, std::vector<double> std) {
  return [mean = std::move(mean), std = std::move(std)](const at::Tensor& x, at::Generator&) {
    return functional::to_normalized(x, mean, std);
  };
}

}  // namespace birdplane::transforms
