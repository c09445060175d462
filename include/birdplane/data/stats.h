// Per-channel mean and std of a set of uint8 images, the book's recipe: every pixel after ToTensor
// (x / 255), unbiased std.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace birdplane::data {

/// Per-channel statistics on the [0,1] scale.
struct ChannelStats {
  std::vector<double> mean;  ///< one per channel
  std::vector<double> std;   ///< unbiased (divides by n - 1)
  int64_t pixels_per_channel = 0;
};

/// Counts of each byte value per channel, over any number of uint8 image batches [N,C,H,W]: the
/// sums behind mean and std are exact integers, so adding the batches one at a time gives the same
/// statistics as one pass over all of them.
class ChannelHistogram {
 public:
  void add(const at::Tensor& images_u8);
  /// Mean and unbiased std on the [0,1] scale; an error when nothing was added.
  ChannelStats stats() const;

 private:
  std::vector<std::array<int64_t, 256>> counts_;  ///< one histogram per channel
  int64_t pixels_per_channel_ = 0;
};

/// One streaming pass over uint8 images [N,C,H,W]: counts each byte value per channel (exact
/// integer sums, no float copy of the images), then forms mean and std in float64.
ChannelStats channel_stats(const at::Tensor& images_u8);

}  // namespace birdplane::data
