// Color / photometric / misc transforms against torchvision 0.14 (tests/golden/data/color.pt, written
// by tools/golden/color.py). Every function runs on the uint8 and float32 batches and on each image
// alone; the random classes' draws for a seed are compared with torchvision's under torch.manual_seed.
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/color.h"
#include "birdplane/transforms/convert_erase_linear.h"
#include "support/golden.h"
#include "support/transform_checks.h"

using namespace birdplane;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;
using fixtures::max_abs_diff;

namespace {

using fixtures::seeded;

// uint8 (and integer) results must be equal; float results within 1e-5. (The functions repeat
// torchvision's ATen calls in its order, so float results come out bit-equal too; any that do not are
// printed as a note.)
void expect_match(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  if (got.is_floating_point()) {
    EXPECT_LE(max_abs_diff(got, want), 1e-5) << what;
    if (!torch::equal(got, want)) {
      std::cout << "[ note ] " << what << ": float result differs from torchvision by " << max_abs_diff(got, want)
                << " (within tolerance)\n";
    }
  } else
    EXPECT_TRUE(torch::equal(got, want)) << what << ": max abs diff " << max_abs_diff(got, want);
}

// Checks fn on the whole batch and on each image alone against the golden batch.
void expect_op(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& input,
               const at::Tensor& want, const std::string& what) {
  expect_match(fn(input), want, what + " (batch)");
  for (int64_t i = 0; i < input.size(0); ++i)
    expect_match(fn(input[i]), want[i], what + " (image " + std::to_string(i) + ")");
}

}  // namespace

TEST(GoldenColor, FunctionsOnUint8AndFloatImagesMatchTorchvision) {
  fixtures::Golden g("color.pt");
  const std::map<std::string, std::function<at::Tensor(const at::Tensor&)>> ops = {
      {"gray", [](const at::Tensor& x) { return F::rgb_to_grayscale(x, 1); }},
      {"bright13", [](const at::Tensor& x) { return F::adjust_brightness(x, 1.3); }},
      {"bright06", [](const at::Tensor& x) { return F::adjust_brightness(x, 0.6); }},
      {"contrast15", [](const at::Tensor& x) { return F::adjust_contrast(x, 1.5); }},
      {"contrast04", [](const at::Tensor& x) { return F::adjust_contrast(x, 0.4); }},
      {"sat03", [](const at::Tensor& x) { return F::adjust_saturation(x, 0.3); }},
      {"sat17", [](const at::Tensor& x) { return F::adjust_saturation(x, 1.7); }},
      {"hue02", [](const at::Tensor& x) { return F::adjust_hue(x, 0.2); }},
      {"hue_m035", [](const at::Tensor& x) { return F::adjust_hue(x, -0.35); }},
      {"gamma07", [](const at::Tensor& x) { return F::adjust_gamma(x, 0.7, 1.1); }},
      {"gamma2", [](const at::Tensor& x) { return F::adjust_gamma(x, 2.0); }},
      {"sharp25", [](const at::Tensor& x) { return F::adjust_sharpness(x, 2.5); }},
      {"sharp03", [](const at::Tensor& x) { return F::adjust_sharpness(x, 0.3); }},
      {"invert", [](const at::Tensor& x) { return F::invert(x); }},
      {"autocontrast", [](const at::Tensor& x) { return F::autocontrast(x); }},
      {"blur53", [](const at::Tensor& x) { return F::gaussian_blur(x, {5, 3}, std::array<double, 2>{1.2, 0.7}); }},
      {"blur3", [](const at::Tensor& x) { return F::gaussian_blur(x, {3, 3}); }},
      {"erase",
       [](const at::Tensor& x) { return F::erase(x, 2, 3, 5, 6, torch::tensor({0.5f, 0.25f, 1.0f}).view({3, 1, 1})); }},
  };
  const std::set<std::string> u8_only = {"bright06", "contrast04", "sat17", "gamma2", "sharp03", "blur3"};
  for (const auto& [name, fn] : ops) {
    expect_op(fn, g["u8"], g[name + "_u8"], name + " uint8");
    if (!u8_only.count(name)) expect_op(fn, g["f32"], g[name + "_f32"], name + " float32");
  }
  expect_op([](const at::Tensor& x) { return F::solarize(x, 100); }, g["u8"], g["solarize_u8"], "solarize uint8");
  expect_op([](const at::Tensor& x) { return F::solarize(x, 0.4); }, g["f32"], g["solarize_f32"], "solarize float32");
  expect_op([](const at::Tensor& x) { return F::posterize(x, 3); }, g["u8"], g["posterize3_u8"], "posterize 3");
  expect_op([](const at::Tensor& x) { return F::posterize(x, 0); }, g["u8"], g["posterize0_u8"], "posterize 0");
  expect_op([](const at::Tensor& x) { return F::equalize(x); }, g["u8"], g["equalize_u8"], "equalize");
  expect_match(F::equalize(g["low_u8"]), g["equalize_low_u8"], "equalize low contrast");
  expect_match(F::autocontrast(g["low_u8"]), g["autocontrast_low_u8"], "autocontrast low contrast");
  expect_match(F::equalize(g["u8"][0].narrow(0, 0, 1)), g["equalize_gray_u8"], "equalize one channel");
  // Three gray channels are the one-channel result repeated.
  auto gray3 = F::rgb_to_grayscale(g["u8"], 3);
  for (int64_t c = 0; c < 3; ++c) expect_match(gray3.narrow(1, c, 1), g["gray_u8"], "grayscale 3 channels");
}

TEST(GoldenColor, ConversionsAndLinearTransformationMatchTorchvision) {
  fixtures::Golden g("color.pt");
  auto u8 = g["u8"], f32 = g["f32"];
  expect_match(F::convert_image_dtype(u8, torch::kFloat), g["u8_to_f32"], "uint8 -> float32");
  expect_match(F::convert_image_dtype(f32, torch::kByte), g["f32_to_u8"], "float32 -> uint8");
  expect_match(F::convert_image_dtype(f32, torch::kShort), g["f32_to_i16"], "float32 -> int16");
  expect_match(F::convert_image_dtype(u8, torch::kShort), g["u8_to_i16"], "uint8 -> int16");
  expect_match(F::convert_image_dtype(g["u8_to_i16"] + 100, torch::kByte), g["i16_to_u8"], "int16 -> uint8");
  expect_match(F::convert_image_dtype(u8.to(torch::kInt) * 1000003, torch::kDouble), g["i32_to_f64"],
               "int32 -> float64");
  EXPECT_TRUE(F::convert_image_dtype(u8, torch::kByte).is_same(u8));
  // pil_to_tensor: HWC bytes to CHW, values unchanged.
  expect_match(F::pil_to_tensor(u8[0].permute({1, 2, 0}).contiguous()), u8[0], "pil_to_tensor");
  expect_match(T::PILToTensor()(u8.permute({0, 2, 3, 1}).contiguous()), u8, "PILToTensor batch");
  EXPECT_EQ(T::ConvertImageDtype(torch::kFloat).repr(), "ConvertImageDtype(torch.float32)");

  T::LinearTransformation lt(g["lt_matrix"], g["lt_mean"]);
  expect_match(lt(g["lt_in"]), g["lt_out"], "LinearTransformation batch");
  expect_match(lt(g["lt_in"][0]), g["lt_out0"], "LinearTransformation image");
}

TEST(GoldenColor, ColorJitterDrawsAndImagesMatchTorchvision) {
  fixtures::Golden g("color.pt");
  auto check_draws = [&](const T::ColorJitter& cj, uint64_t seed, const std::string& key) {
    auto gen = seeded(seed);
    auto orders = g[key + "_order"], factors = g[key + "_factors"];
    for (int64_t i = 0; i < 4; ++i) {
      auto p = T::ColorJitter::get_params(gen, cj.brightness(), cj.contrast(), cj.saturation(), cj.hue());
      for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(p.order[k], orders[i][k].item<int64_t>()) << key << " draw " << i;
      const std::optional<double> got[4] = {p.brightness, p.contrast, p.saturation, p.hue};
      for (int64_t k = 0; k < 4; ++k) {
        const double want = factors[i][k].item<double>();
        EXPECT_EQ(got[k].has_value(), !std::isnan(want)) << key << " draw " << i << " factor " << k;
        if (got[k]) {
          EXPECT_EQ(*got[k], want) << key << " draw " << i << " factor " << k;
        }
      }
    }
  };
  T::ColorJitter cj(0.4, {0.5, 1.5}, 0.4, 0.1);
  check_draws(cj, 100, "cj");
  check_draws(T::ColorJitter(0, 0, 0, 0.3), 102, "cj_hue");
  EXPECT_EQ(cj.repr(), "ColorJitter(brightness=[0.6, 1.4], contrast=[0.5, 1.5], saturation=[0.6, 1.4], hue=[-0.1, 0.1])");
  // The batch, drawing image by image, equals torchvision's per-image calls from the same seed.
  auto gen = seeded(101);
  expect_match(cj.forward(g["u8"], gen), g["cj_out_u8"], "ColorJitter uint8");
  auto gen2 = seeded(103);
  expect_match(cj.forward(g["f32"], gen2), g["cj_out_f32"], "ColorJitter float32");
}

TEST(GoldenColor, GaussianBlurDrawsAndImagesMatchTorchvision) {
  fixtures::Golden g("color.pt");
  auto gen = seeded(110);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(T::GaussianBlur::get_params(gen, 0.1, 2.0), g["blur_sigmas"][i].item<double>()) << "draw " << i;
  auto gen2 = seeded(111);
  expect_match(T::GaussianBlur({5, 3}).forward(g["u8"], gen2), g["blur_out_u8"], "GaussianBlur uint8");
}

TEST(GoldenColor, RandomErasingDrawsAndImagesMatchTorchvision) {
  fixtures::Golden g("color.pt");
  auto check_boxes = [&](uint64_t seed, int64_t n, std::array<double, 2> scale, std::array<double, 2> ratio,
                         bool random, const std::string& key) {
    auto gen = seeded(seed);
    auto boxes = g[key];
    std::vector<at::Tensor> noise;
    for (int64_t k = 0; k < n; ++k) {
      auto p = T::RandomErasing::get_params(gen, 3, 16, 20, scale, ratio, {0}, random);
      EXPECT_EQ(p.i, boxes[k][0].item<int64_t>()) << key << " " << k;
      EXPECT_EQ(p.j, boxes[k][1].item<int64_t>()) << key << " " << k;
      EXPECT_EQ(p.h, boxes[k][2].item<int64_t>()) << key << " " << k;
      EXPECT_EQ(p.w, boxes[k][3].item<int64_t>()) << key << " " << k;
      if (random) noise.push_back(p.value.reshape(-1));
    }
    if (random) expect_match(torch::cat(noise), g["erase_random_noise"], "RandomErasing random value");
  };
  check_boxes(120, 8, {0.02, 0.33}, {0.3, 3.3}, false, "erase_boxes");
  check_boxes(121, 3, {0.02, 0.33}, {0.3, 3.3}, true, "erase_random_boxes");
  check_boxes(122, 2, {0.9, 1.0}, {3.0, 3.3}, false, "erase_nofit_boxes");  // no box fits: the whole image
  auto gen = seeded(123);
  expect_match(T::RandomErasing(0.7, {0.02, 0.33}, {0.3, 3.3}, {}, true).forward(g["f32"], gen), g["erasing_out_f32"],
               "RandomErasing random float32");
  auto gen2 = seeded(124);
  expect_match(T::RandomErasing(0.9, {0.1, 0.4}, {0.3, 3.3}, {255, 0, 128}).forward(g["u8"], gen2),
               g["erasing_out_u8"], "RandomErasing per-channel uint8");
}

TEST(GoldenColor, FlagTransformsAndRandomApplyMatchTorchvisionImageByImage) {
  fixtures::Golden g("color.pt");
  auto gen = seeded(130);
  auto flags = T::RandomFlagTransform::get_params(gen, 16, 0.5);
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(flags[i], g["flag_draws"][i].item<bool>()) << "draw " << i;
  auto four = g["four_u8"];
  const std::vector<std::pair<std::string, T::TransformPtr>> classes = {
      {"invert", std::make_shared<T::RandomInvert>(0.5)},
      {"posterize", std::make_shared<T::RandomPosterize>(2, 0.5)},
      {"solarize", std::make_shared<T::RandomSolarize>(90, 0.5)},
      {"sharpness", std::make_shared<T::RandomAdjustSharpness>(3.0, 0.5)},
      {"autocontrast", std::make_shared<T::RandomAutocontrast>(0.5)},
      {"equalize", std::make_shared<T::RandomEqualize>(0.5)},
      {"grayscale", std::make_shared<T::RandomGrayscale>(0.5)},
  };
  for (size_t k = 0; k < classes.size(); ++k) {
    auto gk = seeded(140 + k);
    expect_match(classes[k].second->forward(four, gk), g["random_" + classes[k].first + "_u8"], classes[k].first);
  }
  T::RandomApply apply({std::make_shared<T::ColorJitter>(0.5, 0, 0, 0.2), std::make_shared<T::GaussianBlur>(std::array<int64_t, 2>{3, 3})},
                       0.6);
  auto ga = seeded(150);
  expect_match(apply.forward(four, ga), g["random_apply_u8"], "RandomApply");
}

TEST(GoldenColor, BatchEqualsImageByImageForEveryRandomClass) {
  fixtures::Golden g("color.pt");
  auto four = g["four_u8"];
  const std::vector<T::TransformPtr> ts = {
      std::make_shared<T::RandomInvert>(0.5),
      std::make_shared<T::RandomPosterize>(4, 0.5),
      std::make_shared<T::RandomSolarize>(128, 0.5),
      std::make_shared<T::RandomAdjustSharpness>(2.0, 0.5),
      std::make_shared<T::RandomAutocontrast>(0.5),
      std::make_shared<T::RandomEqualize>(0.5),
      std::make_shared<T::RandomGrayscale>(0.5),
      std::make_shared<T::ColorJitter>(0.4, 0.4, 0.4, 0.1),
      std::make_shared<T::GaussianBlur>(std::array<int64_t, 2>{3, 5}),
      std::make_shared<T::RandomErasing>(0.5, std::array<double, 2>{0.02, 0.33}, std::array<double, 2>{0.3, 3.3},
                                         std::vector<double>{}, true),
      std::make_shared<T::RandomApply>(std::vector<T::TransformPtr>{std::make_shared<T::ColorJitter>(0.5)}, 0.5),
      std::make_shared<T::RandomChoice>(
          std::vector<T::TransformPtr>{std::make_shared<T::RandomInvert>(1.0), std::make_shared<T::GaussianBlur>(std::array<int64_t, 2>{3, 3})},
          std::vector<double>{1, 3}),
      std::make_shared<T::RandomOrder>(std::vector<T::TransformPtr>{std::make_shared<T::ColorJitter>(0.5),
                                                                    std::make_shared<T::RandomPosterize>(3, 0.5)}),
  };
  for (const auto& t : ts) {
    for (uint64_t seed : {1, 2, 3}) {
      auto ga = seeded(seed), gb = seeded(seed);
      auto batch = t->forward(four, ga);
      for (int64_t i = 0; i < four.size(0); ++i)
        EXPECT_TRUE(torch::equal(batch[i], t->forward(four[i], gb))) << t->repr() << " seed " << seed << " image " << i;
      // Both generators consumed the same draws.
      EXPECT_EQ(T::RandomFlagTransform::get_params(ga, 1, 0.5), T::RandomFlagTransform::get_params(gb, 1, 0.5));
    }
  }
}
