// Bad input to the color / misc transforms: each error names the transform, the parameter and what
// is allowed. Also the containers' behaviour that torchvision cannot check (RandomChoice, RandomOrder).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/color.h"
#include "birdplane/transforms/convert_erase_linear.h"
#include "support/expect_error.h"
#include "support/transform_checks.h"

using namespace birdplane;
using fixtures::expect_error;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;

namespace {
at::Tensor image_u8() { return torch::randint(0, 256, {3, 8, 10}, torch::kInt64).to(torch::kByte); }
using fixtures::seeded;
}  // namespace

TEST(ColorTransforms, FunctionsRejectBadArguments) {
  auto x = image_u8();
  auto xf = x.to(torch::kFloat) / 255;
  expect_error([&] { F::gaussian_blur(x, {4, 3}); }, {"gaussian_blur", "kernel_size 4", "odd and positive"});
  expect_error([&] { F::gaussian_blur(x, {3, -1}); }, {"kernel_size -1", "odd and positive"});
  expect_error([&] { F::gaussian_blur(x, {3, 3}, std::array<double, 2>{0, 1}); }, {"sigma 0", "positive"});
  expect_error([&] { F::gaussian_blur(x, {21, 3}); }, {"too large"});
  expect_error([&] { F::posterize(x, 9); }, {"posterize", "bits is 9", "0 to 8"});
  expect_error([&] { F::posterize(xf, 3); }, {"posterize", "only uint8", "Float"});
  expect_error([&] { F::equalize(xf); }, {"equalize", "only uint8"});
  expect_error([&] { F::adjust_brightness(x, -0.1); }, {"adjust_brightness", "brightness_factor is -0.1", "0 or more"});
  expect_error([&] { F::adjust_contrast(x, -1); }, {"contrast_factor"});
  expect_error([&] { F::adjust_saturation(x, -1); }, {"saturation_factor"});
  expect_error([&] { F::adjust_sharpness(x, -1); }, {"sharpness_factor"});
  expect_error([&] { F::adjust_hue(x, 0.6); }, {"adjust_hue", "hue_factor is 0.6", "-0.5 to 0.5"});
  expect_error([&] { F::adjust_gamma(x, -1); }, {"adjust_gamma", "gamma"});
  expect_error([&] { F::solarize(xf, 2); }, {"solarize", "threshold is 2", "at most 1"});
  expect_error([&] { F::rgb_to_grayscale(x, 2); }, {"num_output_channels is 2", "1 or 3"});
  expect_error([&] { F::invert(torch::zeros({2, 8, 8})); }, {"invert", "1 or 3 channels"});
  expect_error([&] { F::erase(x, 5, 5, 5, 5, torch::zeros({1})); }, {"erase", "does not fit"});
  expect_error([&] { F::convert_image_dtype(xf, torch::kInt); }, {"cannot be performed safely"});
  expect_error([&] { F::linear_transformation(xf, torch::eye(5), torch::zeros({5})); }, {"240 values", "5x5"});
}

TEST(ColorTransforms, ClassesRejectBadOptions) {
  using A2 = std::array<double, 2>;
  expect_error([] { T::GaussianBlur({4, 3}); }, {"GaussianBlur", "kernel_size 4", "odd and positive"});
  expect_error([] { T::GaussianBlur({0, 3}); }, {"GaussianBlur", "kernel_size 0"});
  expect_error([] { T::GaussianBlur({3, 3}, A2{0, 1}); }, {"GaussianBlur", "sigma", "positive"});
  expect_error([] { T::GaussianBlur({3, 3}, A2{2, 1}); }, {"(min, max)"});
  expect_error([] { T::RandomInvert(1.5); }, {"RandomInvert", "p is 1.5", "between 0 and 1"});
  expect_error([] { T::RandomGrayscale(-0.1); }, {"RandomGrayscale", "p is -0.1"});
  expect_error([] { T::RandomPosterize(9); }, {"RandomPosterize", "bits is 9", "0 to 8"});
  expect_error([] { T::RandomPosterize(-1); }, {"RandomPosterize", "bits is -1"});
  expect_error([] { T::RandomAdjustSharpness(-2); }, {"RandomAdjustSharpness", "sharpness_factor is -2"});
  expect_error([] { T::RandomEqualize(2); }, {"RandomEqualize", "p is 2"});
  expect_error([] { T::RandomAutocontrast(2); }, {"RandomAutocontrast", "p is 2"});
  expect_error([] { T::RandomSolarize(100, 3); }, {"RandomSolarize", "p is 3"});
  expect_error([] { T::ColorJitter(-0.1); }, {"ColorJitter", "brightness is -0.1", "0 or more"});
  expect_error([] { T::ColorJitter(0, {1.5, 0.5}); }, {"ColorJitter", "contrast range [1.5, 0.5]", "min <= max"});
  expect_error([] { T::ColorJitter(0, 0, {-1, 2}); }, {"saturation range", "0 <= min"});
  expect_error([] { T::ColorJitter(0, 0, 0, 0.6); }, {"ColorJitter", "hue is 0.6", "0 to 0.5"});
  expect_error([] { T::ColorJitter(0, 0, 0, {-0.6, 0.1}); }, {"hue range", "-0.5 <= min <= max <= 0.5"});
  expect_error([] { T::RandomErasing(1.5); }, {"RandomErasing", "p is 1.5"});
  expect_error([] { T::RandomErasing(0.5, {0.5, 0.1}); }, {"RandomErasing", "scale (0.5, 0.1)", "(min, max)"});
  expect_error([] { T::RandomErasing(0.5, {0.1, 1.5}); }, {"scale", "between 0 and 1"});
  expect_error([] { T::RandomErasing(0.5, {0.1, 0.2}, {3, 1}); }, {"RandomErasing", "ratio (3, 1)"});
  expect_error([] { T::RandomErasing(1.0, {0.1, 0.2}, {0.3, 3.3}, {1, 2})(torch::zeros({3, 8, 8})); },
               {"RandomErasing", "value has 2 numbers", "one per channel (3)"});
  expect_error([] { T::Grayscale(2); }, {"Grayscale", "num_output_channels is 2"});
  expect_error([] { T::RandomApply({}, 1.2); }, {"RandomApply", "p is 1.2"});
  expect_error([] { T::RandomChoice({}); }, {"RandomChoice", "at least one transform"});
  expect_error([] { T::RandomChoice({std::make_shared<T::RandomInvert>()}, {1, 2}); }, {"p has 2 weights for 1"});
  expect_error([] { T::LinearTransformation(torch::zeros({3, 4}), torch::zeros({3})); }, {"must be square"});
  expect_error([] { T::LinearTransformation(torch::zeros({3, 3}), torch::zeros({4})); }, {"mean_vector has 4"});
  expect_error([] { T::RandomPosterize(3, 1.0)(torch::zeros({3, 8, 8})); }, {"posterize", "only uint8"});
}

TEST(ColorTransforms, ReprsReadLikeTorchvision) {
  EXPECT_EQ(T::Grayscale(3).repr(), "Grayscale(num_output_channels=3)");
  EXPECT_EQ(T::RandomGrayscale().repr(), "RandomGrayscale(p=0.1)");
  EXPECT_EQ(T::RandomPosterize(2).repr(), "RandomPosterize(bits=2,p=0.5)");
  EXPECT_EQ(T::RandomSolarize(128, 0.3).repr(), "RandomSolarize(threshold=128,p=0.3)");
  EXPECT_EQ(T::GaussianBlur({3, 5}).repr(), "GaussianBlur(kernel_size=(3, 5), sigma=(0.1, 2.0))");
  EXPECT_EQ(T::ColorJitter(0.5).repr(), "ColorJitter(brightness=[0.5, 1.5], contrast=None, saturation=None, hue=None)");
  EXPECT_EQ(T::RandomErasing().repr(),
            "RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False)");
  T::RandomApply apply({std::make_shared<T::RandomInvert>()}, 0.3);
  EXPECT_EQ(apply.repr(), "RandomApply(\n    p=0.3\n    RandomInvert(p=0.5)\n)");
  T::RandomChoice choice({std::make_shared<T::RandomInvert>()});
  EXPECT_EQ(choice.repr(), "RandomChoice(\n    RandomInvert(p=0.5)\n)(p=None)");
}

TEST(ColorTransforms, RandomChoiceFollowsItsWeightsAndRandomOrderPermutes) {
  // Weights 1:3 pick the second transform about three times in four.
  auto gen = seeded(5);
  int second = 0;
  for (int i = 0; i < 4000; ++i) second += T::RandomChoice::get_params(gen, 2, {1, 3}) == 1;
  EXPECT_NEAR(second / 4000.0, 0.75, 0.03);
  int last = 0;
  for (int i = 0; i < 3000; ++i) last += T::RandomChoice::get_params(gen, 3, {}) == 2;
  EXPECT_NEAR(last / 3000.0, 1.0 / 3, 0.03);
  // RandomOrder on two non-commuting steps gives both orders across images.
  auto x = image_u8().unsqueeze(0).expand({16, 3, 8, 10}).contiguous();
  T::RandomOrder order({std::make_shared<T::Grayscale>(3), std::make_shared<T::RandomPosterize>(2, 1.0)});
  auto gen2 = seeded(6);
  auto y = order.forward(x, gen2);
  auto a = F::posterize(F::rgb_to_grayscale(x[0], 3), 2), b = F::rgb_to_grayscale(F::posterize(x[0], 2), 3);
  ASSERT_FALSE(torch::equal(a, b));
  int na = 0, nb = 0;
  for (int64_t i = 0; i < 16; ++i) {
    na += torch::equal(y[i], a);
    nb += torch::equal(y[i], b);
  }
  EXPECT_EQ(na + nb, 16);
  EXPECT_GT(na, 0);
  EXPECT_GT(nb, 0);
}

TEST(ColorTransforms, ProbabilityZeroAndOneAndInplaceErasing) {
  auto x = image_u8().unsqueeze(0).repeat({4, 1, 1, 1});
  auto gen = seeded(1);
  EXPECT_TRUE(torch::equal(T::RandomInvert(0.0).forward(x, gen), x));
  EXPECT_TRUE(torch::equal(T::RandomInvert(1.0).forward(x, gen), F::invert(x)));
  EXPECT_TRUE(torch::equal(T::RandomApply({std::make_shared<T::RandomInvert>(1.0)}, 0.0).forward(x, gen), x));
  EXPECT_TRUE(torch::equal(T::RandomApply({std::make_shared<T::RandomInvert>(1.0)}, 1.0).forward(x, gen), F::invert(x)));
  auto copy = x.clone();
  auto y = T::RandomErasing(1.0, {0.1, 0.2}, {0.5, 2}, {7}, false, true).forward(copy, gen);
  EXPECT_EQ(y.data_ptr(), copy.data_ptr());
  EXPECT_FALSE(torch::equal(copy, x));
  EXPECT_TRUE(torch::equal(T::RandomErasing(1.0, {0.1, 0.2}, {0.5, 2}, {7}).forward(x, gen).eq(7).any(), torch::tensor(true)));
}
