#include "birdplane/data/stats.h"

#include <array>
#include <cmath>
#include <mutex>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/huge_buffers.h"

namespace birdplane::data {

void ChannelHistogram::add(const at::Tensor& images_u8) {
  BIRDPLANE_CHECK(images_u8.dim() == 4 && images_u8.scalar_type() == torch::kUInt8,
                  "channel statistics need uint8 images [N,C,H,W], got {} dims of {}",
                  images_u8.dim(), c10::toString(images_u8.scalar_type()));
  auto x = packed_images(images_u8);
  const int64_t n = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t image_stride = x.stride(0);
  if (counts_.empty()) {
    counts_.resize(static_cast<size_t>(channels));
    for (auto& h : counts_) h.fill(0);
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(counts_.size()) == channels,
                  "channel statistics: a batch of {} channels after batches of {}", channels, counts_.size());
  const uint8_t* data = x.data_ptr<uint8_t>();
  std::mutex merge;
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    std::vector<std::array<int64_t, 256>> local(channels);
    for (auto& h : local) h.fill(0);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* p = data + i * image_stride + c * plane;
        auto& h = local[c];
        for (int64_t k = 0; k < plane; ++k) ++h[p[k]];
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t c = 0; c < channels; ++c)
      for (int v = 0; v < 256; ++v) counts_[c][v] += local[c][v];
  });
  pixels_per_channel_ += n * plane;
}

ChannelStats ChannelHistogram::stats() const {
  BIRDPLANE_CHECK(pixels_per_channel_ > 0, "channel statistics need at least one image");
  ChannelStats out;
  out.pixels_per_channel = pixels_per_channel_;
  const double count = static_cast<double>(out.pixels_per_channel);
  for (const auto& h : counts_) {
    // Integer sums are exact (at most 2^63 / 65025 pixels).
    int64_t s1 = 0, s2 = 0;
    for (int v = 0; v < 256; ++v) {
      s1 += h[v] * v;
      s2 += h[v] * v * v;
    }
    const double mean255 = static_cast<double>(s1) / count;
    // sum (x - mean)^2 = s2 - s1^2 / n, computed in long double to keep the cancellation small.
    const long double ss = static_cast<long double>(s2) -
                           static_cast<long double>(s1) * static_cast<long double>(s1) / count;
    const double var255 = count > 1 ? static_cast<double>(ss / (count - 1)) : 0.0;
    out.mean.push_back(mean255 / 255.0);
    out.std.push_back(std::sqrt(var255) / 255.0);
  }
  return out;
}

ChannelStats channel_stats(const at::Tensor& images_u8) {
  ChannelHistogram h;
  h.add(images_u8);
  return h.stats();
}

}  // namespace birdplane::data
