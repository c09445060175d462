#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/transforms.h"

using namespace birdplane;
namespace F = birdplane::transforms::functional;

TEST(ToTensor, ScalesBytesAndKeepsFloats) {
  auto img = torch::tensor({0, 51, 255}, torch::kUInt8).view({3, 1, 1});
  auto t = F::to_tensor(img);
  EXPECT_EQ(t.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(t[1][0][0].item<float>(), 0.2f);
  EXPECT_FLOAT_EQ(t[2][0][0].item<float>(), 1.0f);
  auto f = torch::full({3, 2, 2}, 7.0, torch::kFloat64);
  EXPECT_FLOAT_EQ(F::to_tensor(f)[0][0][0].item<float>(), 7.0f);  // torchvision scales only bytes
  auto gray = torch::full({5, 6}, 255, torch::kUInt8);
  EXPECT_EQ(F::to_tensor(gray).sizes(), (std::vector<int64_t>{1, 5, 6}));
  auto hwc = torch::zeros({5, 6, 3}, torch::kUInt8);
  EXPECT_EQ(F::to_tensor(hwc).sizes(), (std::vector<int64_t>{3, 5, 6}));
  EXPECT_THROW(F::to_tensor(torch::zeros({3}, torch::kUInt8)), Error);
  EXPECT_THROW(F::to_tensor(torch::zeros({3, 2, 2}, torch::kInt32)), Error);
}

TEST(Normalize, PerChannelOnImagesAndBatches) {
  auto x = torch::ones({2, 3, 2, 2});
  auto y = F::normalize(x, {0.0, 0.5, 1.0}, {1.0, 0.5, 2.0});
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(y[1][1][1][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(y[0][2][0][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(x[0][0][0][0].item<float>(), 1.0f);  // not in place by default
  auto one = F::normalize(x[0], {0.5}, {0.25});         // one value for all channels
  EXPECT_FLOAT_EQ(one[2][1][1].item<float>(), 2.0f);
  auto in = torch::ones({3, 2, 2});
  transforms::Normalize(std::vector<double>{1, 1, 1}, std::vector<double>{1, 1, 1}, true)(in);
  EXPECT_FLOAT_EQ(in[0][0][0].item<float>(), 0.0f);  // inplace
}

TEST(Normalize, RejectsZeroStdAndWrongChannelCounts) {
  try {
    transforms::Normalize({0.5, 0.5, 0.5}, {0.2, 0.0, 0.2});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("std[1] is 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(F::normalize(torch::ones({3, 2, 2}), {0.5, 0.5}, {1, 1}), Error);
  EXPECT_THROW(F::normalize(torch::ones({3, 2, 2}), {0.5}, {0.0}), Error);
  EXPECT_THROW(F::normalize(torch::ones({3, 2, 2}, torch::kUInt8), {0.5}, {1.0}), Error);
}

TEST(Compose, AppliesInOrderAndPrints) {
  transforms::Compose c;
  c.add(std::make_shared<transforms::ToTensor>())
      .add(std::make_shared<transforms::Lambda>([](const at::Tensor& x) { return x * 2; }, "double"))
      .add(std::make_shared<transforms::Normalize>(std::vector<double>{1.0}, std::vector<double>{0.5}));
  auto out = c(torch::full({3, 1, 1}, 255, torch::kUInt8));
  EXPECT_FLOAT_EQ(out[0][0][0].item<float>(), 2.0f);  // (255/255*2 - 1) / 0.5
  EXPECT_NE(c.repr().find("Lambda(double)"), std::string::npos);
  EXPECT_NE(c.repr().find("Normalize(mean=[1], std=[0.5])"), std::string::npos) << c.repr();
}
