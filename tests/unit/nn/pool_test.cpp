// birdplane's 2x2 max pooling against LibTorch's max_pool2d: values, gradients, ties, odd sizes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "nn/pool.h"

using namespace birdplane;

TEST(MaxPool2x2, EqualsMaxPool2dForwardAndBackward) {
  torch::manual_seed(3);
  for (const auto& sizes : {std::vector<int64_t>{4, 16, 32, 32}, {2, 3, 7, 9}, {1, 1, 2, 2}, {3, 5, 16, 15}}) {
    auto x = torch::randn(sizes);
    auto a = x.clone().requires_grad_(true), b = x.clone().requires_grad_(true);
    auto ya = nn::max_pool2x2(a), yb = torch::max_pool2d(b, 2);
    ASSERT_TRUE(torch::equal(ya, yb)) << sizes;
    auto g = torch::randn(ya.sizes());
    ya.backward(g);
    yb.backward(g);
    EXPECT_TRUE(torch::equal(a.grad(), b.grad())) << sizes;
  }
}

TEST(MaxPool2x2, TiesGoToTheFirstMaximumAsInLibTorch) {
  // Quantized values: many windows hold their maximum twice or more.
  auto x = torch::randint(0, 3, {2, 4, 8, 8}).to(torch::kFloat);
  auto a = x.clone().requires_grad_(true), b = x.clone().requires_grad_(true);
  nn::max_pool2x2(a).sum().backward();
  torch::max_pool2d(b, 2).sum().backward();
  EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
}

TEST(MaxPool2x2, RefusesWhatItDoesNotHandle) {
  EXPECT_THROW(nn::max_pool2x2(torch::randn({2, 3, 4})), Error);
  EXPECT_THROW(nn::max_pool2x2(torch::randn({1, 1, 4, 4}, torch::kDouble)), Error);
  EXPECT_THROW(nn::max_pool2x2(torch::randn({1, 1, 1, 4})), Error);
}
