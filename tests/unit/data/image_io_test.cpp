#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "data/font.h"
#include "birdplane/data/image_io.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::expect_error;
using birdplane::fixtures::TempDir;

namespace {


// A deterministic uint8 [c,h,w] image that uses the whole 0..255 range.
torch::Tensor full_range_image(int64_t c, int64_t h, int64_t w) {
  return (torch::arange(c * h * w, torch::kInt64).reshape({c, h, w}) * 37 + 11).remainder(256).to(torch::kUInt8);
}

torch::Tensor u8(std::vector<int64_t> values, std::vector<int64_t> shape) {
  return torch::tensor(values, torch::kInt64).reshape(shape).to(torch::kUInt8);
}

// Largest absolute difference between two uint8 tensors, for failure messages.
int64_t max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt64) - b.to(torch::kInt64)).abs().max().item<int64_t>();
}

constexpr uint8_t kWhite = 255;

}  // namespace

TEST(ImageIo, PngRoundTripsUint8Exactly) {
  TempDir tmp;
  auto img = full_range_image(3, 5, 7);
  data::write_png(tmp / "a.png", img);
  auto loaded = data::read_image(tmp / "a.png");
  EXPECT_EQ(loaded.original_width, 7);
  EXPECT_EQ(loaded.original_height, 5);
  EXPECT_EQ(loaded.original_channels, 3);
  ASSERT_EQ(loaded.image.sizes(), img.sizes());
  EXPECT_EQ(loaded.image.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(loaded.image, img)) << "largest difference " << max_diff(loaded.image, img);
  // No temporary file is left beside the result.
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1);
}

TEST(ImageIo, PngRoundTripsFloatWithinOneLevel) {
  TempDir tmp;
  auto img = torch::rand({3, 6, 4}, torch::TensorOptions().dtype(torch::kFloat));
  data::write_png(tmp / "f.png", img);
  auto loaded = data::read_image(tmp / "f.png").image.to(torch::kFloat);
  const float worst = (loaded - img * 255).abs().max().item<float>();
  EXPECT_LE(worst, 0.5f + 1e-4f) << "largest difference in levels " << worst;
  // Values outside [0,1] clamp; a single-channel float image becomes gray.
  data::write_png(tmp / "g.png", torch::tensor({-1.0f, 0.5f, 2.0f}).reshape({1, 1, 3}));
  auto gray = data::read_image(tmp / "g.png");
  EXPECT_EQ(gray.original_channels, 1);
  EXPECT_TRUE(torch::equal(gray.image, u8({0, 128, 255, 0, 128, 255, 0, 128, 255}, {3, 1, 3})));
}

TEST(ImageIo, ReadsGrayAndRgbaAsRgb) {
  TempDir tmp;
  const uint8_t gray[] = {0, 50, 100, 150, 200, 250};  // 3 wide, 2 high
  ASSERT_NE(stbi_write_png((tmp / "gray.png").c_str(), 3, 2, 1, gray, 3), 0);
  auto g = data::read_image(tmp / "gray.png");
  EXPECT_EQ(g.original_channels, 1);
  ASSERT_EQ(g.image.sizes(), (std::vector<int64_t>{3, 2, 3}));
  for (int c = 0; c < 3; ++c)
    EXPECT_TRUE(torch::equal(g.image[c], u8({0, 50, 100, 150, 200, 250}, {2, 3})));

  // RGBA: alpha is dropped, colour kept as is (not blended with a background).
  const uint8_t rgba[] = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 4};  // 2x2
  ASSERT_NE(stbi_write_png((tmp / "rgba.png").c_str(), 2, 2, 4, rgba, 8), 0);
  auto a = data::read_image(tmp / "rgba.png");
  EXPECT_EQ(a.original_channels, 4);
  EXPECT_TRUE(torch::equal(a.image, u8({10, 40, 70, 1, 20, 50, 80, 2, 30, 60, 90, 3}, {3, 2, 2})));
}

TEST(ImageIo, ReadsJpegAndBmp) {
  TempDir tmp;
  // A smooth image survives JPEG well; a single flat colour would hide channel-order mistakes.
  auto img = torch::empty({3, 16, 16}, torch::kUInt8);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) {
      img[0][y][x] = 40 + 8 * x;
      img[1][y][x] = 200 - 6 * y;
      img[2][y][x] = 100;
    }
  auto hwc = img.permute({1, 2, 0}).contiguous();
  ASSERT_NE(stbi_write_jpg((tmp / "a.jpg").c_str(), 16, 16, 3, hwc.data_ptr<uint8_t>(), 95), 0);
  auto j = data::read_image(tmp / "a.jpg");
  ASSERT_EQ(j.image.sizes(), img.sizes());
  EXPECT_LE(max_diff(j.image, img), 12) << "JPEG at quality 95 should stay close";
  EXPECT_LE((j.image.to(torch::kFloat) - img.to(torch::kFloat)).abs().mean().item<float>(), 3.0f);

  ASSERT_NE(stbi_write_bmp((tmp / "a.bmp").c_str(), 16, 16, 3, hwc.data_ptr<uint8_t>()), 0);
  auto b = data::read_image(tmp / "a.bmp");
  EXPECT_TRUE(torch::equal(b.image, img)) << "largest difference " << max_diff(b.image, img);
}

TEST(ImageIo, ReadErrorsNameTheFile) {
  TempDir tmp;
  {
    std::ofstream f(tmp / "notes.png");
    f << "this is a text file, not an image\n";
  }
  // The file is recognised by its bytes, not its name: the reason says what was expected.
  expect_error([&] { data::read_image(tmp / "notes.png"); },
               {"notes.png", "cannot read image", "not an image birdplane can read", "PNG"});
  expect_error([&] { data::read_image(tmp / "missing.png"); }, {"missing.png", "does not exist"});
}

TEST(ImageIo, WriteErrorsNameThePathAndKeepOldFiles) {
  TempDir tmp;
  expect_error([&] { data::write_png(tmp / "no/such/folder/x.png", full_range_image(3, 2, 2)); },
               {"no/such/folder/x.png", "does not exist"});
  expect_error([&] { data::write_png(tmp / "bad.png", full_range_image(2, 2, 2)); }, {"bad.png", "[3,H,W]", "[2, 2, 2]"});
  expect_error([&] { data::write_png(tmp / "bad.png", full_range_image(3, 2, 2).to(torch::kInt32)); }, {"bad.png", "Int"});
  EXPECT_FALSE(fs::exists(tmp / "bad.png"));

  // Replacing a file swaps it whole.
  data::write_png(tmp / "keep.png", full_range_image(3, 4, 4));
  data::write_png(tmp / "keep.png", full_range_image(3, 2, 3));
  EXPECT_EQ(data::read_image(tmp / "keep.png").image.sizes(), (std::vector<int64_t>{3, 2, 3}));

  // A read-only folder: root ignores permissions, so only check it as a normal user.
  if (geteuid() != 0) {
    fs::create_directory(tmp / "ro");
    fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    expect_error([&] { data::write_png(tmp / "ro/x.png", full_range_image(3, 2, 2)); }, {"ro/x.png", "writable"});
  }
}

TEST(ImageIo, ResizeToSameSizeIsIdentity) {
  auto img = full_range_image(3, 32, 32);
  EXPECT_TRUE(torch::equal(data::resize_bilinear(img, 32, 32), img));
}

TEST(ImageIo, ResizeUpscalesTwoByTwoAsHandComputed) {
  // Half-pixel centres: output pixel i of 4 samples input position (i + 0.5) / 2 - 0.5, i.e.
  // -0.25, 0.25, 0.75, 1.25, clamped at the borders. Row 0 is 0 -> 100: 0, 25, 75, 100. The
  // corner-to-corner mixes round half to even (58.75 -> 59).
  auto img = u8({0, 100, 200, 40}, {1, 2, 2}).expand({3, 2, 2}).contiguous();
  auto out = data::resize_bilinear(img, 4, 4);
  auto want = u8({0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40}, {4, 4});
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(torch::equal(out[c], want)) << out[c];
}

// Golden values: Debian's torchvision 0.14.1 / torch 1.13 at /usr/bin/python3, computed with
//   x = ((torch.arange(72).reshape(3, 4, 6) * 37 + 11) % 256).to(torch.uint8)
//   F.resize(x, [h, w], interpolation=InterpolationMode.BILINEAR, antialias=True).flatten().tolist()
// Several outputs sit exactly on .5 before rounding, so these check the rounding order too.
TEST(ImageIo, ResizeMatchesTorchvisionDownscale) {
  auto out = data::resize_bilinear(full_range_image(3, 4, 6), 2, 3);
  auto want = u8({92, 84, 145, 179, 94, 92, 133, 185, 124, 80, 146, 196, 170, 82, 129, 179, 83, 76}, {3, 2, 3});
  EXPECT_TRUE(torch::equal(out, want)) << "largest difference " << max_diff(out, want) << "\n" << out;
}

TEST(ImageIo, ResizeMatchesTorchvisionUpscale) {
  auto out = data::resize_bilinear(full_range_image(3, 4, 6), 7, 9);
  auto want = u8(
      {11,  30,  54,  79,  104, 128, 153, 178, 196, 90,  63,  42,  67,  91,  116, 141, 165, 184, 217, 117, 23,
       47,  72,  97,  121, 146, 164, 216, 170, 110, 49,  52,  77,  102, 126, 145, 197, 215, 200, 66,  42,  58,
       82,  107, 126, 177, 196, 205, 169, 96,  38,  63,  88,  106, 165, 184, 208, 233, 130, 26,  51,  76,  94,
       131, 150, 174, 199, 224, 205, 59,  42,  60,  119, 137, 162, 187, 211, 209, 124, 75,  48,  99,  118, 143,
       167, 192, 214, 226, 129, 28,  80,  98,  123, 148, 172, 197, 222, 182, 137, 61,  79,  104, 128, 153, 178,
       202, 227, 246, 41,  60,  84,  109, 134, 158, 183, 208, 226, 29,  48,  72,  97,  122, 146, 171, 196, 214,
       251, 142, 38,  63,  88,  112, 137, 162, 180, 239, 175, 102, 66,  75,  100, 125, 149, 168, 219, 229, 205,
       71,  56,  81,  105, 130, 148, 200, 218, 200, 54,  36,  61,  86,  110, 129, 181, 199, 184, 50,  26,  42,
       66,  91,  110, 161, 180, 189, 153, 80,  22,  47,  72,  90,  149, 168, 192, 217, 114, 10,  35,  60,  78},
      {3, 7, 9});
  EXPECT_TRUE(torch::equal(out, want)) << "largest difference " << max_diff(out, want);
}

TEST(ImageIo, ResizeMatchesTorchvisionMixed) {
  // Height shrinks while width grows: antialiasing applies to one axis only.
  auto out = data::resize_bilinear(full_range_image(3, 4, 6), 3, 10);
  auto want = u8({78,  62,  38,  60,  82,  104, 127, 149, 171, 186, 216, 180, 125, 70,  41,  64,  86,  108,
                  130, 145, 175, 190, 212, 188, 144, 59,  45,  67,  89,  104, 121, 136, 158, 180, 202, 224,
                  175, 90,  66,  50,  80,  95,  117, 139, 161, 184, 206, 228, 173, 137, 39,  54,  76,  98,
                  121, 143, 165, 187, 209, 224, 241, 184, 99,  75,  66,  88,  111, 133, 155, 170, 200, 215,
                  237, 106, 25,  48,  70,  92,  114, 129, 159, 174, 196, 172, 128, 43,  29,  51,  73,  88},
                 {3, 3, 10});
  EXPECT_TRUE(torch::equal(out, want)) << "largest difference " << max_diff(out, want);
}

TEST(ImageIo, ResizeRejectsBadInput) {
  expect_error([] { data::resize_bilinear(full_range_image(3, 4, 4), 0, 4); }, {"at least 1x1", "0x4"});
  expect_error([] { data::resize_bilinear(full_range_image(3, 4, 4).to(torch::kFloat), 2, 2); }, {"uint8", "Float"});
}

TEST(ImageIo, UpscaleNearestRepeatsEachPixelAsABlock) {
  auto img = full_range_image(3, 4, 5);
  auto big = data::upscale_nearest(img, 3);
  ASSERT_EQ(big.sizes(), (std::vector<int64_t>{3, 12, 15}));
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 5; ++x) {
        auto block = big[c].slice(0, 3 * y, 3 * y + 3).slice(1, 3 * x, 3 * x + 3);
        EXPECT_TRUE((block == img[c][y][x]).all().item<bool>()) << "c " << c << " y " << y << " x " << x;
      }
  EXPECT_TRUE(torch::equal(data::upscale_nearest(img, 1), img));
  expect_error([&] { data::upscale_nearest(img, 0); }, {"at least 1", "0"});
}

TEST(ImageIo, MakeGridPlacesScaledImagesAndCaptions) {
  // Three 4x6 images in a 2x2 grid at scale 2, padding 3: text scale 1, caption band 2 + 9 = 11.
  // "airplane" is 8*6-1 = 47 pixels wide, wider than the 12-pixel image, so cells are 47 wide and
  // images sit centred at (47 - 12) / 2 = 17 pixels into their cell.
  auto images = torch::stack({full_range_image(3, 4, 6), full_range_image(3, 4, 6).flip(2), torch::zeros({3, 4, 6}, torch::kUInt8)});
  const std::vector<std::string> captions = {"cat", "airplane", "dog"};
  auto grid = data::make_grid(images, 2, 2, 2, captions, 3);
  ASSERT_EQ(data::grid_text_scale(2), 1);
  const int cell_w = 47, cell_h = 8 + 11, pad = 3;
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{3, 2 * cell_h + 3 * pad, 2 * cell_w + 3 * pad}));
  EXPECT_EQ(grid.scalar_type(), torch::kUInt8);
  for (int i = 0; i < 3; ++i) {
    const int x0 = pad + (i % 2) * (cell_w + pad), y0 = pad + (i / 2) * (cell_h + pad);
    const int ix = x0 + 17;
    auto cell = grid.slice(1, y0, y0 + 8).slice(2, ix, ix + 12);
    EXPECT_TRUE(torch::equal(cell, data::upscale_nearest(images[i], 2))) << "image " << i;
    // Pixels of the caption band under the image: some ink, and only within the caption's width.
    auto band = grid.slice(1, y0 + 8, y0 + cell_h).slice(2, x0, x0 + cell_w);
    auto inked = (band != kWhite).any(0);
    EXPECT_GT(inked.sum().item<int64_t>(), 10) << "caption of image " << i;
    const int tw = data::text_width(captions[i], 1);
    const int tx = (cell_w - tw) / 2;
    EXPECT_EQ(inked.slice(1, 0, tx).sum().item<int64_t>(), 0);
    EXPECT_EQ(inked.slice(1, tx + tw).sum().item<int64_t>(), 0);
  }
  // The fourth cell is empty, and so is the padding between cells.
  const int x3 = pad + cell_w + pad, y3 = pad + cell_h + pad;
  EXPECT_TRUE((grid.slice(1, y3, y3 + cell_h).slice(2, x3, x3 + cell_w) == kWhite).all().item<bool>());
  EXPECT_TRUE((grid.slice(2, 0, pad) == kWhite).all().item<bool>());
  EXPECT_TRUE((grid.slice(1, pad + cell_h, 2 * pad + cell_h) == kWhite).all().item<bool>());
}

TEST(ImageIo, MakeGridWithoutCaptionsAndBadInput) {
  auto images = torch::stack({full_range_image(3, 4, 4), full_range_image(3, 4, 4)});
  auto grid = data::make_grid(images, 1, 2, 3, {}, 0);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{3, 12, 24}));
  EXPECT_TRUE(torch::equal(grid.slice(2, 12, 24), data::upscale_nearest(images[1], 3)));
  expect_error([&] { data::make_grid(images, 1, 1, 3, {}, 0); }, {"2 images", "1x1"});
  expect_error([&] { data::make_grid(images, 1, 2, 3, {"one"}, 0); }, {"1 captions", "2 images"});
  expect_error([&] { data::make_grid(full_range_image(3, 4, 4), 1, 2, 3, {}, 0); }, {"[N,3,H,W]"});
}

TEST(ShowFont, DrawTextInksOnlyInsideTheTextBox) {
  auto canvas = torch::zeros({3, 20, 60}, torch::kUInt8);
  data::draw_text(canvas, 2, 3, "bird 42", {200, 100, 50}, 1);
  auto inked = (canvas != 0).any(0);
  const int w = data::text_width("bird 42", 1);
  EXPECT_EQ(w, 7 * 6 - 1);
  EXPECT_GT(inked.sum().item<int64_t>(), 30);
  // Everything inked lies in [2, 2+w) x [3, 3+9), and in the requested colour.
  EXPECT_EQ(inked.sum().item<int64_t>(), inked.slice(0, 3, 3 + 9).slice(1, 2, 2 + w).sum().item<int64_t>());
  auto ys = inked.nonzero();
  auto p = ys[0];
  EXPECT_EQ(canvas[0][p[0]][p[1]].item<uint8_t>(), 200);
  EXPECT_EQ(canvas[1][p[0]][p[1]].item<uint8_t>(), 100);
  EXPECT_EQ(canvas[2][p[0]][p[1]].item<uint8_t>(), 50);
  // Every character of the small font has a glyph of its own, and each one draws something
  // except the space.
  for (char c : std::string("abcdefghijklmnopqrstuvwxyz0123456789-_:.#")) {
    EXPECT_TRUE(data::has_glyph(c)) << c;
    auto one = torch::zeros({3, 9, 5}, torch::kUInt8);
    data::draw_text(one, 0, 0, std::string(1, c), {255, 255, 255}, 1);
    EXPECT_GT((one != 0).sum().item<int64_t>(), 0) << c;
  }
}

TEST(ShowFont, DrawTextDistinctGlyphsAndScale) {
  // No two characters share a bitmap (a typo in the table would make two letters look alike).
  const std::string chars = "abcdefghijklmnopqrstuvwxyz0123456789-_:.#";
  std::vector<torch::Tensor> drawn;
  for (char c : chars) {
    auto one = torch::zeros({3, 9, 5}, torch::kUInt8);
    data::draw_text(one, 0, 0, std::string(1, c), {255, 255, 255}, 1);
    drawn.push_back(one);
  }
  for (size_t i = 0; i < drawn.size(); ++i)
    for (size_t j = i + 1; j < drawn.size(); ++j)
      EXPECT_FALSE(torch::equal(drawn[i], drawn[j])) << chars[i] << " and " << chars[j];
  // Scale 3 draws each font pixel as a 3x3 block; upper case draws as lower case.
  auto big = torch::zeros({3, 27, 15}, torch::kUInt8);
  data::draw_text(big, 0, 0, "G", {255, 255, 255}, 3);
  EXPECT_TRUE(torch::equal(big, data::upscale_nearest(drawn[chars.find('g')], 3)));
  // Clipping: text partly outside the canvas draws the visible part only, without crashing.
  auto small = torch::zeros({3, 4, 4}, torch::kUInt8);
  data::draw_text(small, -3, -2, "ab", {255, 255, 255}, 2);
  EXPECT_GT((small != 0).sum().item<int64_t>(), 0);
}

TEST(ShowFont, DrawTextUnknownCharacterIsABox) {
  EXPECT_FALSE(data::has_glyph('?'));
  EXPECT_FALSE(data::has_glyph('\xc3'));
  auto canvas = torch::zeros({3, 9, 5}, torch::kUInt8);
  data::draw_text(canvas, 0, 0, "?", {255, 255, 255}, 1);
  auto inked = (canvas[0] != 0).to(torch::kInt64);
  // A closed outline on the x-height rows 2-6: full top and bottom edges, both sides, hollow inside.
  EXPECT_EQ(inked[2].sum().item<int64_t>(), 5);
  EXPECT_EQ(inked[6].sum().item<int64_t>(), 5);
  for (int y = 3; y <= 5; ++y) {
    EXPECT_EQ(inked[y][0].item<int64_t>(), 1);
    EXPECT_EQ(inked[y][4].item<int64_t>(), 1);
    EXPECT_EQ(inked[y].slice(0, 1, 4).sum().item<int64_t>(), 0);
  }
  EXPECT_EQ(inked.sum().item<int64_t>(), 16);
  auto bad = torch::zeros({4, 9, 5}, torch::kUInt8);
  expect_error([&] { data::draw_text(bad, 0, 0, "a", {0, 0, 0}, 1); }, {"uint8 [3,H,W]"});
}
