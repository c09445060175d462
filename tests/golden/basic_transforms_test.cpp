// ToTensor, Normalize and Compose against torchvision 0.14 (tests/golden/data/basic_transforms.pt).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/transforms.h"
#include "support/golden.h"

using namespace birdplane;
namespace F = birdplane::transforms::functional;

namespace {
std::vector<double> to_vec(const at::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
}  // namespace

TEST(GoldenTransforms, ToTensorMatchesTorchvisionExactly) {
  fixtures::Golden g("basic_transforms.pt");
  auto hwc = g["input_hwc"];  // [4,32,32,3] uint8, as PIL/numpy hold images
  auto expected = g["to_tensor"];
  // One image at a time (HWC input) and the whole batch at once.
  for (int64_t i = 0; i < hwc.size(0); ++i) {
    auto got = F::to_tensor(hwc[i], F::Layout::kHWC);
    EXPECT_EQ(got.sizes(), expected[i].sizes());
    EXPECT_TRUE(torch::equal(got, expected[i])) << "max diff " << fixtures::max_abs_diff(got, expected[i]);
  }
  auto batch = transforms::ToTensor()(hwc);  // auto layout detects HWC
  EXPECT_TRUE(torch::equal(batch, expected)) << "max diff " << fixtures::max_abs_diff(batch, expected);
  // CHW uint8 input gives the same result.
  auto chw = F::to_tensor(hwc.permute({0, 3, 1, 2}).contiguous(), F::Layout::kCHW);
  EXPECT_TRUE(torch::equal(chw, expected));
}

TEST(GoldenTransforms, NormalizeAndComposeMatchTorchvision) {
  fixtures::Golden g("basic_transforms.pt");
  auto mean = to_vec(g["mean"]), std = to_vec(g["std"]);
  auto expected = g["normalized"];
  transforms::Compose pipeline({std::make_shared<transforms::ToTensor>(),
                                std::make_shared<transforms::Normalize>(mean, std)});
  auto batch = pipeline(g["input_hwc"]);
  EXPECT_LE(fixtures::max_abs_diff(batch, expected), 1e-6);
  for (int64_t i = 0; i < 4; ++i) {
    auto one = pipeline(g["input_hwc"][i]);
    EXPECT_LE(fixtures::max_abs_diff(one, expected[i]), 1e-6);
  }
  // The fused uint8 path used by the loader agrees within float rounding.
  auto fused = F::to_normalized(g["input_hwc"].permute({0, 3, 1, 2}).contiguous(), mean, std);
  EXPECT_LE(fixtures::max_abs_diff(fused, expected), 1e-5);
}
