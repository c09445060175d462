// The resize kernel against ATen's _upsample_bilinear2d_aa itself: float32 values bit for bit, and
// the rounded bytes, over shapes that shrink and enlarge each axis, long and short filters, and one
// pixel. fit_image through the kernel against torchvision's Resize + CenterCrop is in
// image_folder_test (SizesAndCropsMatchTorchvision).
#include <array>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/transforms/geometry.h"
#include "data/image_fit.h"
#include "data/resize_kernels.h"

using namespace birdplane;

namespace {

std::vector<uint8_t> random_rgb(int64_t h, int64_t w, std::mt19937& rng) {
  std::vector<uint8_t> img(static_cast<size_t>(h * w * 3));
  for (auto& v : img) v = static_cast<uint8_t>(rng() & 0xFF);
  return img;
}

at::Tensor as_chw(std::vector<uint8_t>& hwc, int64_t h, int64_t w) {
  return torch::from_blob(hwc.data(), {h, w, 3}, torch::kUInt8).permute({2, 0, 1}).contiguous();
}

}  // namespace

TEST(ResizeKernel, EachPathEqualsATenBitForBit) {
  using data::kernels::Path;
  int paths = 0;
  for (Path path : {Path::kAvx512, Path::kAvx2}) {
    if (!data::kernels::cpu_has(path)) continue;
    ++paths;
    std::mt19937 rng(7);
    int64_t cases = 0;
    for (int64_t h : {1, 2, 5, 9, 32, 61, 224, 481})
      for (int64_t w : {1, 3, 32, 100, 333})
        for (int64_t oh : {1, 4, 32, 64, 150})
          for (int64_t ow : {1, 7, 32, 64, 299}) {
            auto img = random_rgb(h, w, rng);
            const at::Tensor chw = as_chw(img, h, w);
            const c10::optional<double> none;
            const at::Tensor ref =
                at::_upsample_bilinear2d_aa(chw.to(torch::kFloat32).unsqueeze(0), {oh, ow}, false, none, none).squeeze(0);
            at::Tensor mine = torch::empty({3, oh, ow}, torch::kFloat32);
            data::kernels::resize_rgb_float_on(path, img.data(), h, w, mine.data_ptr<float>(), oh, ow);
            ASSERT_TRUE(torch::equal(mine, ref))
                << (path == Path::kAvx512 ? "avx512" : "avx2") << ": " << h << "x" << w << " -> " << oh << "x" << ow
                << ", largest difference " << (mine - ref).abs().max().item<float>();
            ++cases;
          }
    EXPECT_EQ(cases, 8 * 5 * 5 * 5);
  }
  if (paths == 0) GTEST_SKIP() << "this CPU has neither path: ATen is used";
}

TEST(ResizeKernel, RoundedBytesAreTorchvisionsUint8Result) {
  if (!data::kernels::resize_available()) GTEST_SKIP() << "this machine's ATen computes differently: ATen is used";
  std::mt19937 rng(3);
  for (const auto& [h, w, oh, ow] : {std::array<int64_t, 4>{224, 224, 64, 64}, {30, 41, 97, 13}, {3, 3, 1, 1}}) {
    auto img = random_rgb(h, w, rng);
    at::Tensor bytes = torch::empty({3, oh, ow}, torch::kUInt8);
    data::kernels::resize_rgb(img.data(), h, w, bytes.data_ptr<uint8_t>(), oh, ow);
    // resize_bilinear is torchvision's F.resize on a uint8 tensor, all in ATen.
    EXPECT_TRUE(torch::equal(bytes, data::resize_bilinear(as_chw(img, h, w), static_cast<int>(oh), static_cast<int>(ow))))
        << h << "x" << w << " -> " << oh << "x" << ow;
  }
}

TEST(ResizeKernel, FitRgbEqualsFitImageThroughATen) {
  // fit_rgb (the image folder's path) against the ATen ops fit_image is defined by: resize_bilinear
  // then torchvision's center_crop.
  std::mt19937 rng(11);
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{224, 224}, {50, 90}, {90, 50}, {33, 33}, {7, 300}}) {
    auto img = random_rgb(h, w, rng);
    const at::Tensor chw = as_chw(img, h, w);
    for (const auto& [th, tw] : {std::pair<int64_t, int64_t>{64, 64}, {32, 48}, {33, 33}, {100, 20}}) {
      for (auto crop : {data::CropMode::kNone, data::CropMode::kCenter}) {
        at::Tensor ref;
        if (crop == data::CropMode::kNone) {
          ref = (h == th && w == tw) ? chw : data::resize_bilinear(chw, static_cast<int>(th), static_cast<int>(tw));
        } else {
          // Resize so the image covers the target, keeping its aspect ratio, then CenterCrop.
          int64_t nh = th, nw = tw;
          if (th * w >= tw * h) {
            nw = std::max(tw, th * w / h);
          } else {
            nh = std::max(th, tw * h / w);
          }
          const at::Tensor scaled = (nh == h && nw == w) ? chw : data::resize_bilinear(chw, static_cast<int>(nh), static_cast<int>(nw));
          ref = transforms::functional::center_crop(scaled, {th, tw});
        }
        at::Tensor out = torch::empty({3, th, tw}, torch::kUInt8);
        data::fit_rgb(img.data(), h, w, th, tw, crop, out.data_ptr<uint8_t>());
        EXPECT_TRUE(torch::equal(out, ref)) << h << "x" << w << " -> " << th << "x" << tw << " crop "
                                            << data::to_string(crop);
        EXPECT_TRUE(torch::equal(data::fit_image(chw, th, tw, crop), ref));
      }
    }
  }
}
