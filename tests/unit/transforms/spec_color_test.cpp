// Color transforms written as spec strings: they parse, run on a uint8 batch with a generator, keep
// it uint8 and the same size, equal the classes they name, and bad values give errors naming the spot.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/color.h"
#include "birdplane/transforms/convert_erase_linear.h"
#include "birdplane/transforms/spec.h"
#include "support/expect_error.h"
#include "support/transform_checks.h"

using namespace birdplane;
using fixtures::expect_error;

TEST(ColorSpec, EveryColorTransformParsesAndKeepsAUint8Batch) {
  auto x = torch::randint(0, 256, {6, 3, 16, 16}, torch::kInt64).to(torch::kByte);
  using namespace transforms;
  using std::make_shared;
  auto invert_or_equalize = [] {
    return std::vector<TransformPtr>{make_shared<RandomInvert>(), make_shared<RandomEqualize>(1)};
  };
  const std::vector<fixtures::SpecCase> specs = {
      {"Grayscale(num_output_channels=3)", make_shared<Grayscale>(3)},
      {"RandomGrayscale(0.5)", make_shared<RandomGrayscale>(0.5)},
      {"ColorJitter(0.4, 0.4, 0.4, 0.1)", make_shared<ColorJitter>(0.4, 0.4, 0.4, 0.1)},
      {"ColorJitter(brightness=[0.5, 1.5], hue=(-0.2, 0.2))",
       make_shared<ColorJitter>(JitterRange(0.5, 1.5), 0, 0, JitterRange(-0.2, 0.2))},
      {"GaussianBlur(3)", make_shared<GaussianBlur>(std::array<int64_t, 2>{3, 3})},
      {"GaussianBlur((5, 3), sigma=(0.5, 1))",
       make_shared<GaussianBlur>(std::array<int64_t, 2>{5, 3}, std::array<double, 2>{0.5, 1})},
      {"GaussianBlur(kernel_size=5, sigma=1.5)",
       make_shared<GaussianBlur>(std::array<int64_t, 2>{5, 5}, std::array<double, 2>{1.5, 1.5})},
      {"RandomInvert()", make_shared<RandomInvert>()},
      {"RandomPosterize(4)", make_shared<RandomPosterize>(4)},
      {"RandomPosterize(bits=2, p=1)", make_shared<RandomPosterize>(2, 1.0)},
      {"RandomSolarize(128)", make_shared<RandomSolarize>(128)},
      {"RandomAdjustSharpness(2, p=0.7)", make_shared<RandomAdjustSharpness>(2, 0.7)},
      {"RandomAutocontrast()", make_shared<RandomAutocontrast>()},
      {"RandomEqualize(p=0.9)", make_shared<RandomEqualize>(0.9)},
      {"RandomErasing()", make_shared<RandomErasing>()},
      {"RandomErasing(p=1, scale=(0.1, 0.3), ratio=[0.5, 2], value=[255, 0, 0])",
       make_shared<RandomErasing>(1.0, std::array<double, 2>{0.1, 0.3}, std::array<double, 2>{0.5, 2},
                                  std::vector<double>{255, 0, 0})},
      {"RandomErasing(value=random)",
       make_shared<RandomErasing>(0.5, std::array<double, 2>{0.02, 0.33}, std::array<double, 2>{0.3, 3.3},
                                  std::vector<double>{}, true)},
      {"RandomErasing(value='random', inplace=True)",
       make_shared<RandomErasing>(0.5, std::array<double, 2>{0.02, 0.33}, std::array<double, 2>{0.3, 3.3},
                                  std::vector<double>{}, true, true)},
      {"RandomApply([ColorJitter(0.4), RandomInvert(1)], p=0.8)",
       make_shared<RandomApply>(std::vector<TransformPtr>{make_shared<ColorJitter>(0.4), make_shared<RandomInvert>(1)},
                                0.8)},
      {"RandomChoice([RandomInvert, RandomEqualize(1)])", make_shared<RandomChoice>(invert_or_equalize())},
      {"RandomChoice([RandomInvert, RandomEqualize(1)], p=[1, 2])",
       make_shared<RandomChoice>(invert_or_equalize(), std::vector<double>{1, 2})},
      {"RandomOrder([RandomInvert(), GaussianBlur(3)])",
       make_shared<RandomOrder>(std::vector<TransformPtr>{make_shared<RandomInvert>(),
                                                          make_shared<GaussianBlur>(std::array<int64_t, 2>{3, 3})})},
      {"ConvertImageDtype(float32), ConvertImageDtype(torch.uint8)",
       make_shared<Compose>(std::vector<TransformPtr>{make_shared<ConvertImageDtype>(torch::kFloat32),
                                                      make_shared<ConvertImageDtype>(torch::kUInt8)}),
       /*changes=*/false},
  };
  fixtures::expect_specs_keep_uint8_batches(specs, x);
  // A spec gives the same images as the class it names, from the same seed.
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(4), g2 = at::make_generator<at::CPUGeneratorImpl>(4);
  auto a = transforms::parse_transforms("ColorJitter(brightness=0.3, hue=0.1), RandomEqualize(0.5)")->forward(x, g1);
  auto b = transforms::RandomEqualize(0.5).forward(transforms::ColorJitter(0.3, 0, 0, 0.1).forward(x, g2), g2);
  EXPECT_TRUE(torch::equal(a, b));
  // General pipelines: ToTensor and Normalize parse too (not for --augment: they make floats).
  auto f = transforms::parse_transforms("ToTensor(), Normalize([0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])")->forward(x, g1);
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  expect_error([&] { transforms::parse_augment("Grayscale(1)")(x, g1); }, {"augment: ", "uint8 images of the same size"});
}

TEST(ColorSpec, BadValuesNameTheSpotAndWhatIsAllowed) {
  expect_error([] { transforms::parse_augment("GaussianBlur(4)"); }, {"augment: ", "GaussianBlur", "column 1", "kernel_size 4", "odd and positive"});
  expect_error([] { transforms::parse_augment("GaussianBlur(3, sigma=-1)"); }, {"sigma", "positive"});
  expect_error([] { transforms::parse_augment("GaussianBlur(3, sigma=(2, 1))"); }, {"(min, max)"});
  expect_error([] { transforms::parse_augment("flip, RandomInvert(p=1.5)"); }, {"RandomInvert", "column 7", "p is 1.5", "between 0 and 1"});
  expect_error([] { transforms::parse_augment("RandomPosterize(9)"); }, {"bits is 9", "0 to 8"});
  expect_error([] { transforms::parse_augment("RandomPosterize()"); }, {"'bits' is required"});
  expect_error([] { transforms::parse_augment("ColorJitter(brightness=-0.5)"); }, {"ColorJitter", "brightness is -0.5", "0 or more"});
  expect_error([] { transforms::parse_augment("ColorJitter(hue=0.7)"); }, {"hue is 0.7", "0 to 0.5"});
  expect_error([] { transforms::parse_augment("ColorJitter(contrast=[1, 2, 3])"); }, {"contrast", "pair"});
  expect_error([] { transforms::parse_augment("ColorJitter(gamma=1)"); }, {"unexpected argument 'gamma'"});
  expect_error([] { transforms::parse_augment("RandomErasing(scale=(0.5, 0.1))"); }, {"RandomErasing", "scale (0.5, 0.1)"});
  expect_error([] { transforms::parse_augment("RandomErasing(value=noise)"); }, {"value is 'noise'", "random"});
  expect_error([] { transforms::parse_augment("RandomApply(RandomInvert, p=0.5)"); }, {"list of transforms"});
  expect_error([] { transforms::parse_augment("RandomApply([Blur(3)])"); }, {"unknown transform 'Blur'"});
  expect_error([] { transforms::parse_augment("RandomChoice([RandomInvert], p=[1, 2])"); }, {"p has 2 weights for 1"});
  expect_error([] { transforms::parse_augment("ConvertImageDtype(int8)"); }, {"dtype is 'int8'", "float32", "uint8"});
  expect_error([] { transforms::parse_augment("Grayscale(2)"); }, {"num_output_channels is 2", "1 or 3"});
  expect_error([] { transforms::parse_augment("Normalize([0.5], [0])"); }, {"Normalize"});
}
