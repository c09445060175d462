// End-to-end tests of `birdplane show`: run the built program on a fake data folder.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/cifar10.h"
#include "data/font.h"
#include "birdplane/data/image_io.h"
#include "support/fixtures.h"
#include "support/sanitizer.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::contains;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::TempDir;

namespace {


// Fake data with 10 records per train file: 50 train images, labels cycling 0..9.
struct FakeData {
  TempDir tmp;
  std::string dir = fixtures::write_fake_cifar(tmp.path(), 10);
  std::string show(const std::string& args) const { return "show --data-dir " + dir + " --no-download " + args; }
};

}  // namespace

TEST(CliShow, WritesOneImageScaledEightTimes) {
  FakeData d;
  const std::string out = d.tmp / "img3.png";
  auto r = run_birdplane(d.show("--index 3 --out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "wrote " + out + " (cat)")) << r.out;  // label 3 is cat
  auto img = data::read_image(out).image;
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 256, 256}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE((img[c].slice(0, 0, 8).slice(1, 0, 8) == fixtures::fake_pixel(3, c, 0, 0)).all().item<bool>());
    EXPECT_TRUE((img[c].slice(0, 248, 256).slice(1, 16, 24) == fixtures::fake_pixel(3, c, 31, 2)).all().item<bool>());
  }
  // The whole image equals the dataset's image enlarged.
  auto train = data::read_cifar10(d.dir, data::Split::kTrain);
  EXPECT_TRUE(torch::equal(img, data::upscale_nearest(train.images()[3], 8)));
}

TEST(CliShow, ClassesSplitAndScale) {
  FakeData d;
  const std::string out = d.tmp / "bird.png";
  // Within airplane,bird the order is record 0 (airplane), 2 (bird), 10 (airplane), 12 (bird)...
  auto r = run_birdplane(d.show("--classes airplane,bird --index 1 --scale 2 --out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "(bird)")) << r.out;
  auto train = data::read_cifar10(d.dir, data::Split::kTrain);
  EXPECT_TRUE(torch::equal(data::read_image(out).image, data::upscale_nearest(train.images()[2], 2)));

  // The test split of the fake data starts at record 1000.
  r = run_birdplane(d.show("--split test --index 0 --scale 1 --out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto test = data::read_cifar10(d.dir, data::Split::kTest);
  EXPECT_TRUE(torch::equal(data::read_image(out).image, test.images()[0]));
}

TEST(CliShow, WritesAGridWithCaptions) {
  FakeData d;
  const std::string out = d.tmp / "grid.png";
  auto r = run_birdplane(d.show("--index 4 --grid 2x3 --out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "wrote " + out + " (2x3 images from index 4)")) << r.out;
  // Scale 3: 96-pixel images, caption text scale 1, band 2 + 9, padding 4. Images 4..9 are deer,
  // dog, frog, horse, ship, truck; the widest caption (29 pixels) is narrower than 96, so cells are
  // 96 wide.
  const int cell_w = 96, cell_h = 96 + 11, pad = 4;
  auto img = data::read_image(out).image;
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 2 * cell_h + 3 * pad, 3 * cell_w + 4 * pad}));
  auto train = data::read_cifar10(d.dir, data::Split::kTrain);
  // Image 4 + 4 = 8 sits in row 1, column 1.
  const int x0 = pad + cell_w + pad, y0 = pad + cell_h + pad;
  EXPECT_TRUE(torch::equal(img.slice(1, y0, y0 + 96).slice(2, x0, x0 + 96), data::upscale_nearest(train.images()[8], 3)));
  auto band = img.slice(1, y0 + 96, y0 + cell_h).slice(2, x0, x0 + cell_w);
  EXPECT_GT((band != 255).any(0).sum().item<int64_t>(), 10) << "caption under image 8 (ship)";
}

TEST(CliShow, IndexOutOfRangeNamesFlagAndRange) {
  FakeData d;
  const std::string out = d.tmp / "x.png";
  auto r = run_birdplane(d.show("--index 999 --out " + out));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--index 999")) << r.err;
  EXPECT_TRUE(contains(r.err, "0 to 49")) << r.err;
  EXPECT_FALSE(fs::exists(out));
  r = run_birdplane(d.show("--classes airplane,bird --index 10 --out " + out));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "airplane,bird")) << r.err;
  EXPECT_TRUE(contains(r.err, "0 to 9")) << r.err;
}

TEST(CliShow, RejectsBadGridScaleAndOut) {
  FakeData d;
  const std::string out = d.tmp / "x.png";
  const std::vector<std::string> grids = {"0x3", "3x0", "3", "3x", "ax3", "-1x3", "3x3x3"};
  for (size_t i = 0; i < grids.size(); ++i) {
    if (!birdplane::fixtures::run_case(i)) continue;
    const std::string& grid = grids[i];
    auto r = run_birdplane(d.show("--grid " + grid + " --out " + out));
    EXPECT_EQ(r.exit_code, 2) << grid;
    EXPECT_TRUE(contains(r.err, "--grid")) << grid << ": " << r.err;
  }
  // 50 images: a 5x10 grid from 0 fits, from index 1 it does not.
  auto r = run_birdplane(d.show("--grid 5x10 --index 1 --out " + out));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--grid 5x10")) << r.err;
  EXPECT_TRUE(contains(r.err, "1 to 50")) << r.err;
  EXPECT_TRUE(contains(r.err, "50 images")) << r.err;
  for (const std::string scale : {"0", "33"}) {
    r = run_birdplane(d.show("--scale " + scale + " --out " + out));
    EXPECT_EQ(r.exit_code, 2) << scale;
    EXPECT_TRUE(contains(r.err, "--scale")) << r.err;
  }
  r = run_birdplane(d.show("--out " + d.tmp / "x.jpg"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--out")) << r.err;
  EXPECT_TRUE(contains(r.err, ".png")) << r.err;
  r = run_birdplane(d.show("--out " + d.tmp / "missing/x.png"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "missing")) << r.err;
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
  r = run_birdplane("show --data-dir " + d.dir + " --no-download");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--out")) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(CliShow, MissingDataWithNoDownloadSaysHowToGetIt) {
  TempDir tmp;
  auto r = run_birdplane("show --data-dir " + tmp / "nodata" + " --no-download --out " + tmp / "x.png");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "download")) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "x.png"));
}

TEST(CliShow, FailedRunLeavesAnExistingFileUntouched) {
  FakeData d;
  const std::string out = d.tmp / "keep.png";
  auto r = run_birdplane(d.show("--index 1 --out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string before = fixtures::read_file(out);
  const auto time_before = fs::last_write_time(out);
  for (const std::string bad : {"--index 999", "--grid 0x3", "--grid 8x8", "--scale 40", "--split valid"}) {
    r = run_birdplane(d.show(bad + " --out " + out));
    EXPECT_EQ(r.exit_code, 2) << bad;
  }
  EXPECT_EQ(fixtures::read_file(out), before);
  EXPECT_EQ(fs::last_write_time(out), time_before);
  // No temporary file is left in the folder.
  for (const auto& e : fs::directory_iterator(d.tmp.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}
