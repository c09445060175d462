// The user's own images through the built program: train, eval, stats, show and predict on an image
// folder, what the run records, and bad folders and files (exit 2, one message naming the file).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {


// Two classes that a small network tells apart: bright-top images and bright-bottom images, of
// a few different sizes.
std::string make_photos(const std::string& root, int per_class = 10) {
  for (int i = 0; i < per_class; ++i) {
    for (int c = 0; c < 2; ++c) {
      const int64_t h = 18 + (i % 3) * 4, w = 20 + (i % 2) * 6;
      auto img = torch::full({3, h, w}, 30 + i, torch::kUInt8);
      auto half = c == 0 ? img.slice(1, 0, h / 2) : img.slice(1, h / 2, h);
      half.fill_(200 + i);
      const std::string dir = root + (c == 0 ? "/sky" : "/sea") + (i % 4 == 0 ? "/nested" : "");
      fs::create_directories(dir);
      birdplane::data::write_png(dir + "/img" + std::to_string(i) + ".png", img);
    }
  }
  return root;
}

}  // namespace

TEST(ImageFolderCli, TrainEvalStatsShowAndPredictOnAFolder) {
  TempDir t;
  const std::string photos = make_photos(t / "photos");
  const std::string common = " --threads 1 --cache-dir " + (t / "cache");
  auto r = run_birdplane("train --image-folder " + photos + " --image-size 16 --crop center --val-fraction 0.3 "
                         "--model net --epochs 2 --runs-dir " + (t / "runs") + " --name f" + common);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "20 images of 16x16 in 2 classes")) << r.err;
  EXPECT_TRUE(contains(r.out, "14 training / 6 validation images (sea,sky)")) << r.out;
  const auto config = nlohmann::json::parse(read_file(t / "runs/f/config.json"));
  EXPECT_EQ(config["run"]["data"]["image_folder"], photos);
  EXPECT_EQ(config["run"]["data"]["image_size"], (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(config["run"]["data"]["crop"], "center");
  EXPECT_EQ(config["model"]["crop"], "center");
  EXPECT_EQ(config["model"]["classes"], (std::vector<std::string>{"sea", "sky"}));
  EXPECT_EQ(config["model"]["spec"]["image_shape"], (std::vector<int64_t>{3, 16, 16}));
  EXPECT_EQ(config["data"]["train_folder"]["files"], 20);
  EXPECT_EQ(config["data"]["train_folder"]["skipped_count"], 0);

  // The second read of the same folder comes from the cache.
  const std::string model = t / "runs/f/model.pt";
  auto e = run_birdplane("eval --json --checkpoint " + model + " --image-folder " + photos + common);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out)["total"], 20);
  EXPECT_TRUE(contains(e.err, "from the cache")) << e.err;

  auto s = run_birdplane("stats --json --image-folder " + photos + " --image-size 16 --crop center" + common);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto stats = nlohmann::json::parse(s.out);
  EXPECT_EQ(stats["images"], 20);
  EXPECT_EQ(stats["mean"].size(), 3u);

  auto g = run_birdplane("show --image-folder " + photos + " --image-size 16 --grid 2x4 --out " + (t / "grid.png") + common);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_TRUE(fs::exists(t / "grid.png"));

  // predict: a folder (recursive), the model's own size and crop, top-k, CSV and JSON.
  auto p = run_birdplane("predict --top-k 1 --checkpoint " + model + " " + photos);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(contains(p.out, "nested/img0.png: ")) << p.out;
  EXPECT_TRUE(contains(p.out, "resized and center-cropped from")) << p.out;
  EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 20);
  auto c = run_birdplane("predict --csv --checkpoint " + model + " " + photos + "/sky");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(contains(c.out, "file,class,probability,p_sea,p_sky,note,error\n")) << c.out;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 11);
  auto j = run_birdplane("predict --json --top-k 2 --checkpoint " + model + " " + photos + "/sea/img1.png");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto parsed = nlohmann::json::parse(j.out);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0]["top"].size(), 2u);
  EXPECT_NEAR(parsed[0]["probabilities"]["sea"].get<double>() + parsed[0]["probabilities"]["sky"].get<double>(), 1.0,
              1e-5);

  // A bad file among good ones: reported, the others still classified, exit 2 at the end.
  std::ofstream(t / "broken.png") << "not a png";
  auto b = run_birdplane("predict --checkpoint " + model + " " + (t / "broken.png") + " " + photos + "/sea/img1.png");
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_TRUE(contains(b.err, "broken.png")) << b.err;
  EXPECT_TRUE(contains(b.out, "img1.png: ")) << b.out;
  EXPECT_TRUE(contains(b.err, "1 of 2 files could not be read")) << b.err;

  // Resume reads the same folder again (from the cache) and continues.
  auto more = run_birdplane("train --resume " + (t / "runs/f") + " --epochs 3" + common);
  ASSERT_EQ(more.exit_code, 0) << more.err;
  EXPECT_TRUE(contains(more.err, "from the cache")) << more.err;
}

TEST(ImageFolderCli, ValidationFolderNeedsTheSameClasses) {
  TempDir t;
  const std::string photos = make_photos(t / "photos", 6);
  const std::string val = make_photos(t / "val", 3);
  const std::string common = " --threads 1 --no-cache --image-size 16 --model book-small --epochs 1 --runs-dir " + (t / "runs");
  auto r = run_birdplane("train --image-folder " + photos + " --val-folder " + val + " --name v" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "12 training / 6 validation images")) << r.out;
  fs::rename(val + "/sea", val + "/ocean");
  auto bad = run_birdplane("train --image-folder " + photos + " --val-folder " + val + " --name w" + common);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "ocean")) << bad.err;
  EXPECT_FALSE(fs::exists(t / "runs/w"));
}

TEST(ImageFolderCli, BadFoldersAndFilesExitTwoNamingThem) {
  TempDir t;
  const std::string photos = make_photos(t / "photos", 4);
  const std::string common = " --threads 1 --no-cache --image-size 16 --epochs 1 --runs-dir " + (t / "runs");
  // A damaged image stops the run before a run folder exists, naming the file and the way around it.
  std::ofstream(photos + "/sky/zz.jpg") << "text under an image name";
  auto r = run_birdplane("train --image-folder " + photos + " --name a" + common);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "zz.jpg")) << r.err;
  EXPECT_TRUE(contains(r.err, "--skip-bad-images")) << r.err;
  EXPECT_FALSE(fs::exists(t / "runs/a"));
  auto s = run_birdplane("train --image-folder " + photos + " --skip-bad-images --name b" + common);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_TRUE(contains(s.err, "skipped 1 bad files")) << s.err;
  const auto config = nlohmann::json::parse(read_file(t / "runs/b/config.json"));
  EXPECT_EQ(config["data"]["train_folder"]["skipped_count"], 1);
  EXPECT_TRUE(contains(config["data"]["train_folder"]["skipped"][0]["file"].get<std::string>(), "zz.jpg"));
  fs::remove(photos + "/sky/zz.jpg");

  // One class, an empty class folder, a missing folder, a zero-byte image, a bomb.
  TempDir one;
  make_photos(one.path(), 2);
  fs::remove_all(one / "sea");
  auto single = run_birdplane("train --image-folder " + one.path() + " --name c" + common);
  EXPECT_EQ(single.exit_code, 2);
  EXPECT_TRUE(contains(single.err, "one class")) << single.err;
  fs::create_directories(photos + "/empty_class");
  auto empty = run_birdplane("stats --image-folder " + photos + " --no-cache");
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_TRUE(contains(empty.err, "empty_class")) << empty.err;
  fs::remove_all(photos + "/empty_class");
  auto missing = run_birdplane("stats --image-folder " + (t / "nope"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.err, "nope")) << missing.err;
  std::ofstream(photos + "/sea/zero.png").close();
  auto zero = run_birdplane("stats --no-cache --image-size 16 --image-folder " + photos);
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_TRUE(contains(zero.err, "zero.png")) << zero.err;
  fs::remove(photos + "/sea/zero.png");
  auto bomb = run_birdplane("stats --no-cache --image-size 16 --max-pixels 100 --image-folder " + photos);
  EXPECT_EQ(bomb.exit_code, 2);
  EXPECT_TRUE(contains(bomb.err, "100")) << bomb.err;
  auto size = run_birdplane("stats --image-size 0,3 --image-folder " + photos);
  EXPECT_EQ(size.exit_code, 2);
  EXPECT_TRUE(contains(size.err, "--image-size")) << size.err;
  auto mixed = run_birdplane("stats --no-cache --image-folder " + photos);
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_TRUE(contains(mixed.err, "--image-size")) << mixed.err;
  // Bad values of the folder flags name the flag.
  for (const auto& [flags, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--val-fraction 1.5", "--val-fraction"}, {"--val-fraction -0.1", "--val-fraction"},
           {"--max-pixels 0", "--max-pixels"}, {"--crop corner", "--crop"}}) {
    auto bad = run_birdplane("train --image-folder " + photos + " " + flags + " --name z" + common);
    EXPECT_EQ(bad.exit_code, 2) << flags;
    EXPECT_TRUE(contains(bad.err, flag)) << flags << ": " << bad.err;
  }
  EXPECT_FALSE(fs::exists(t / "runs/z"));
  auto size_text = run_birdplane("stats --no-cache --image-size 16,x --image-folder " + photos);
  EXPECT_EQ(size_text.exit_code, 2);
  EXPECT_TRUE(contains(size_text.err, "--image-size")) << size_text.err;
}

// Permission errors as a user who cannot read the file (root reads everything, so the program runs as
// nobody when the tests run as root).
TEST(ImageFolderCli, UnreadableFilesAreNamed) {
  const bool root = geteuid() == 0;
  const auto setpriv = run_shell("command -v setpriv");
  if (root && setpriv.exit_code != 0) GTEST_SKIP() << "running as root without setpriv: cannot drop privileges";
  TempDir t;
  ::chmod(t.path().c_str(), 0755);
  const std::string photos = make_photos(t / "photos", 3);
  run_shell("chmod -R a+rX " + t.path());
  ::chmod((photos + "/sky/img1.png").c_str(), 0);
  const std::string as = root ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : "";
  auto r = run_shell(as + std::string(BIRDPLANE_BINARY) + " stats --no-cache --image-size 16 --image-folder " + photos);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "img1.png")) << r.err;
  ::chmod((photos + "/sky/img1.png").c_str(), 0644);
  ::chmod((photos + "/sea").c_str(), 0);
  auto f = run_shell(as + std::string(BIRDPLANE_BINARY) + " stats --no-cache --image-size 16 --image-folder " + photos);
  EXPECT_EQ(f.exit_code, 2) << f.out << f.err;
  EXPECT_TRUE(contains(f.err, "sea")) << f.err;
  ::chmod((photos + "/sea").c_str(), 0755);
}
