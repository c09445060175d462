// Image folders: ImageFolder's listing order (checked against torchvision itself), decoding into one
// set, sizes and crops (against torchvision's Resize and CenterCrop), the cache and its invalidation,
// the stratified split, and every kind of bad folder or file.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_folder.h"
#include "birdplane/data/image_io.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::expect_error;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {

// A distinct image per (seed): uint8 [3,h,w] using the whole range.
torch::Tensor pattern(int64_t seed, int64_t h, int64_t w) {
  return ((torch::arange(3 * h * w, torch::kInt64).reshape({3, h, w}) * (7 + 2 * seed) + 13 * seed) % 256)
      .to(torch::kUInt8);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

void png(const std::string& path, const torch::Tensor& image) {
  fs::create_directories(fs::path(path).parent_path());
  data::write_png(path, image);
}

// A tree with three classes, nested folders, mixed-case extensions and files ImageFolder ignores.
std::string make_tree(const TempDir& t, int64_t h = 6, int64_t w = 5) {
  const std::string root = t / "tree";
  png(root + "/cat/b.png", pattern(1, h, w));
  png(root + "/cat/a.PNG", pattern(2, h, w));
  png(root + "/cat/sub/z.png", pattern(3, h, w));
  png(root + "/cat/sub b/c.png", pattern(4, h, w));
  png(root + "/ant/x.png", pattern(5, h, w));
  png(root + "/ant/y.png", pattern(6, h, w));
  png(root + "/bee/only.png", pattern(7, h, w));
  png(root + "/bee/only2.png", pattern(8, h, w));
  write_bytes(root + "/bee/notes.txt", "not an image");
  write_bytes(root + "/README", "not a class");
  return root;
}

data::ImageFolderOptions no_cache() {
  data::ImageFolderOptions o;
  o.use_cache = false;
  return o;
}

}  // namespace

TEST(ImageFolder, ListsFilesInTorchvisionImageFolderOrder) {
  TempDir t;
  const std::string root = make_tree(t);
  const auto listing = data::list_image_folder(root);
  // torchvision's own ImageFolder over the same tree (the loader is never called while listing).
  const auto r = run_shell("/usr/bin/python3 -c \"import sys, json; from torchvision import datasets; "
                           "d = datasets.ImageFolder(sys.argv[1], loader=lambda p: None); "
                           "print(json.dumps({'classes': d.classes, 'samples': d.samples}))\" " + root);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(listing.class_names, j["classes"].get<std::vector<std::string>>());
  ASSERT_EQ(listing.files.size(), j["samples"].size());
  for (size_t i = 0; i < listing.files.size(); ++i) {
    EXPECT_EQ(fs::path(listing.files[i]), fs::path(j["samples"][i][0].get<std::string>())) << i;
    EXPECT_EQ(listing.labels[i], j["samples"][i][1].get<int64_t>()) << i;
  }
  // Each file's stamp (what the cache key is made of) is what stat says of it.
  ASSERT_EQ(listing.stamps.size(), listing.files.size());
  for (size_t i = 0; i < listing.files.size(); ++i) {
    struct stat st {};
    ASSERT_EQ(::stat(listing.files[i].c_str(), &st), 0) << listing.files[i];
    EXPECT_EQ(listing.stamps[i].size, st.st_size) << i;
    EXPECT_EQ(listing.stamps[i].mtime_seconds, st.st_mtim.tv_sec) << i;
    EXPECT_EQ(listing.stamps[i].mtime_nanoseconds, st.st_mtim.tv_nsec) << i;
    EXPECT_EQ(listing.stamps[i].inode, static_cast<int64_t>(st.st_ino)) << i;
  }
}

TEST(ImageFolder, ReadsEveryImageWithItsLabel) {
  TempDir t;
  const std::string root = make_tree(t);
  data::ImageFolderReport report;
  auto set = data::read_image_folder(root, no_cache(), &report);
  const auto listing = data::list_image_folder(root);
  EXPECT_EQ(set.class_names(), (std::vector<std::string>{"ant", "bee", "cat"}));
  ASSERT_EQ(*set.size(), listing.files.size());
  EXPECT_EQ(report.files, 8);
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_FALSE(report.from_cache);
  for (size_t i = 0; i < listing.files.size(); ++i) {
    EXPECT_TRUE(torch::equal(set.images()[static_cast<int64_t>(i)], data::read_image(listing.files[i]).image)) << i;
    EXPECT_EQ(set.labels()[static_cast<int64_t>(i)].item<int64_t>(), listing.labels[i]);
  }
}

TEST(ImageFolder, ClassesKeepsASubsetInTheGivenOrder) {
  TempDir t;
  const std::string root = make_tree(t);
  auto o = no_cache();
  o.classes = {"cat", "ant"};
  auto set = data::read_image_folder(root, o);
  EXPECT_EQ(set.class_names(), o.classes);
  EXPECT_EQ(*set.size(), 6u);
  EXPECT_EQ(set.labels().eq(0).sum().item<int64_t>(), 4);  // cat
  EXPECT_EQ(set.labels().eq(1).sum().item<int64_t>(), 2);  // ant
  o.classes = {"cat", "dog"};
  expect_error([&] { data::read_image_folder(root, o); }, {"dog", "ant"});
}

TEST(ImageFolder, ImagesOfDifferentSizesNeedAnImageSize) {
  TempDir t;
  const std::string root = t / "mixed";
  png(root + "/a/1.png", pattern(1, 8, 8));
  png(root + "/a/2.png", pattern(2, 8, 8));
  png(root + "/b/3.png", pattern(3, 12, 9));
  // A choice the caller must make, so a SettingError for image_size (the command line names --image-size).
  try {
    data::read_image_folder(root, no_cache());
    ADD_FAILURE() << "expected a SettingError";
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "image_size");
    for (const char* part : {"3.png", "12x9", "1.png", "8x8"})
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
  auto o = no_cache();
  o.image_size = {8, 8};
  auto set = data::read_image_folder(root, o);
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{3, 8, 8}));
}

// Resize and Resize + CenterCrop against torchvision on the same uint8 tensors.
TEST(ImageFolder, SizesAndCropsMatchTorchvision) {
  TempDir t;
  const std::string root = t / "sizes";
  png(root + "/a/wide.png", pattern(1, 20, 37));
  png(root + "/a/tall.png", pattern(2, 41, 18));
  png(root + "/b/small.png", pattern(3, 7, 9));
  for (auto crop : {data::CropMode::kNone, data::CropMode::kCenter}) {
    for (std::vector<int64_t> size : {std::vector<int64_t>{16, 16}, std::vector<int64_t>{12, 20}}) {
      auto o = no_cache();
      o.image_size = size;
      o.crop = crop;
      auto set = data::read_image_folder(root, o);
      const std::string out = t / "ours.pt";
      torch::save(set.images(), out);
      const std::string script = R"PY(
import sys, torch, numpy as np
from PIL import Image
import torchvision.transforms as T
root, h, w, crop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
files = [root + '/a/tall.png', root + '/a/wide.png', root + '/b/small.png']
res = []
for f in files:
    x = torch.from_numpy(np.array(Image.open(f).convert('RGB'))).permute(2, 0, 1).contiguous()
    if crop == 'none':
        y = T.Resize((h, w), antialias=True)(x)
    else:
        ih, iw = x.shape[1:]
        if h * iw >= w * ih:
            nh, nw = h, max(w, int(h * iw / ih))
        else:
            nh, nw = max(h, int(w * ih / iw)), w
        y = T.CenterCrop((h, w))(T.Resize((nh, nw), antialias=True)(x))
    res.append(y)
torch.save(torch.stack(res), sys.argv[6])
)PY";
      fixtures::write_text(t / "ref.py", script);
      const auto r = run_shell(fmt::format("/usr/bin/python3 {} {} {} {} {} {} {}", t / "ref.py", root, size[0],
                                           size[1], data::to_string(crop), out, t / "ref.pt"));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      std::ifstream in(t / "ref.pt", std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto ref = torch::pickle_load(bytes).toTensor();
      ASSERT_EQ(ref.sizes(), set.images().sizes());
      EXPECT_TRUE(torch::equal(ref, set.images()))
          << data::to_string(crop) << " " << size[0] << "x" << size[1] << ": largest difference "
          << (ref.to(torch::kInt) - set.images().to(torch::kInt)).abs().max().item<int>();
    }
  }
}

TEST(ImageFolder, CenterCropOfASquareTargetIsResizeThenCenterCrop) {
  const auto img = pattern(4, 30, 50);
  const auto ours = data::fit_image(img, 24, 24, data::CropMode::kCenter);
  // Resize(24): the short side (30) becomes 24, the long side int(24 * 50 / 30) = 40; then the centre.
  const auto resized = data::resize_bilinear(img, 24, 40);
  EXPECT_TRUE(torch::equal(ours, resized.slice(2, 8, 32)));
}

TEST(ImageFolder, CacheIsReadBackAndRebuiltWhenTheFolderChanges) {
  TempDir t;
  const std::string root = make_tree(t);
  data::ImageFolderOptions o;
  o.cache_dir = t / "cache";
  data::ImageFolderReport r1, r2, r3, r4;
  auto first = data::read_image_folder(root, o, &r1);
  EXPECT_FALSE(r1.from_cache);
  ASSERT_FALSE(r1.cache_file.empty()) << r1.cache_note;
  EXPECT_TRUE(fs::exists(r1.cache_file));
  auto second = data::read_image_folder(root, o, &r2);
  EXPECT_TRUE(r2.from_cache);
  EXPECT_EQ(r2.cache_file, r1.cache_file);
  EXPECT_TRUE(torch::equal(first.images(), second.images()));
  EXPECT_TRUE(torch::equal(first.labels(), second.labels()));
  EXPECT_EQ(first.class_names(), second.class_names());
  // Writing to the mapped tensor never reaches the file.
  second.images().fill_(0);
  auto third = data::read_image_folder(root, o, &r3);
  EXPECT_TRUE(r3.from_cache);
  EXPECT_TRUE(torch::equal(first.images(), third.images()));

  // A changed file (new content, new modification time) rebuilds the cache.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  png(root + "/ant/x.png", pattern(9, 6, 5));
  auto changed = data::read_image_folder(root, o, &r4);
  EXPECT_FALSE(r4.from_cache);
  EXPECT_TRUE(torch::equal(changed.images()[0], pattern(9, 6, 5)));
  // A new file too.
  png(root + "/ant/new.png", pattern(10, 6, 5));
  data::ImageFolderReport r5;
  auto grown = data::read_image_folder(root, o, &r5);
  EXPECT_FALSE(r5.from_cache);
  EXPECT_EQ(*grown.size(), 9u);
  // Other preprocessing is another cache file; the first stays valid.
  auto sized = o;
  sized.image_size = {4, 4};
  data::ImageFolderReport r6, r7;
  data::read_image_folder(root, sized, &r6);
  EXPECT_NE(r6.cache_file, r5.cache_file);
  data::read_image_folder(root, o, &r7);
  EXPECT_TRUE(r7.from_cache);
}

TEST(ImageFolder, DamagedOrHalfWrittenCacheIsNeverUsed) {
  TempDir t;
  const std::string root = make_tree(t);
  data::ImageFolderOptions o;
  o.cache_dir = t / "cache";
  data::ImageFolderReport r;
  const auto good = data::read_image_folder(root, o, &r);
  const std::string cache = r.cache_file;
  const std::string bytes = fixtures::read_file(cache);
  // A flipped pixel byte (checksum), a cut file (a writer killed mid-way would leave only its temporary
  // file, but a cut file under the real name must not be trusted either), and a header claiming more.
  std::string flipped = bytes;
  flipped[flipped.size() - 20] = static_cast<char>(flipped[flipped.size() - 20] ^ 0x40);
  const std::vector<std::pair<std::string, std::string>> damages = {
      {"flipped", flipped}, {"cut", bytes.substr(0, bytes.size() / 2)}, {"empty", ""}, {"junk", "BPIMGC01junk"}};
  for (const auto& [what, damaged] : damages) {
    fixtures::write_text(cache, damaged);
    data::ImageFolderReport again;
    const auto set = data::read_image_folder(root, o, &again);
    EXPECT_FALSE(again.from_cache) << what;
    EXPECT_TRUE(torch::equal(set.images(), good.images())) << what;
    // ... and it was rewritten whole.
    EXPECT_EQ(fixtures::read_file(cache), bytes) << what;
  }
  // A temporary file left by a killed writer is ignored and does not block the next write.
  fixtures::write_text(cache + ".tmp.12345", bytes.substr(0, 100));
  data::ImageFolderReport last;
  data::read_image_folder(root, o, &last);
  EXPECT_TRUE(last.from_cache);
}

TEST(ImageFolder, BadImagesStopTheReadOrAreSkippedWhenAsked) {
  TempDir t;
  const std::string root = make_tree(t);
  write_bytes(root + "/ant/empty.png", "");
  write_bytes(root + "/bee/text.jpg", "this is not a JPEG at all");
  const std::string full = fixtures::read_file(root + "/cat/b.png");
  write_bytes(root + "/cat/cut.png", full.substr(0, full.size() / 2));
  // The first bad file met stops the read: a BadImageError naming it and the option that goes past it.
  try {
    data::read_image_folder(root, no_cache());
    ADD_FAILURE() << "expected a BadImageError";
  } catch (const data::BadImageError& e) {
    const std::string file = fs::path(e.file()).filename().string();
    EXPECT_TRUE(file == "empty.png" || file == "text.jpg" || file == "cut.png") << e.file();
    EXPECT_NE(e.reason().find(file), std::string::npos) << e.reason();
    EXPECT_NE(std::string(e.what()).find("skip_bad_images"), std::string::npos) << e.what();
  }
  auto o = no_cache();
  o.skip_bad_images = true;
  data::ImageFolderReport report;
  auto set = data::read_image_folder(root, o, &report);
  EXPECT_EQ(report.files, 11);
  ASSERT_EQ(report.skipped.size(), 3u);
  EXPECT_EQ(*set.size(), 8u);
  std::string all;
  for (const auto& s : report.skipped) all += s.file + ": " + s.reason + "\n";
  for (const char* name : {"empty.png", "text.jpg", "cut.png"}) EXPECT_NE(all.find(name), std::string::npos) << all;
  // Each bad file alone names itself.
  for (const char* name : {"ant/empty.png", "bee/text.jpg", "cat/cut.png"}) {
    TempDir one;
    const std::string r2 = make_tree(one);
    fs::copy_file(root + "/" + name, r2 + "/" + name);
    expect_error([&] { data::read_image_folder(r2, no_cache()); }, {name});
  }
}

TEST(ImageFolder, DecompressionBombsAreRefusedByTheirHeader) {
  TempDir t;
  const std::string root = make_tree(t, 40, 40);
  auto o = no_cache();
  o.max_pixels = 1000;  // the 40x40 images declare 1600
  expect_error([&] { data::read_image_folder(root, o); }, {"1000"});
}

TEST(ImageFolder, BadFoldersSayWhatIsWrong) {
  TempDir t;
  expect_error([&] { data::list_image_folder(t / "missing"); }, {"missing", "does not exist"});
  write_bytes(t / "file", "x");
  expect_error([&] { data::list_image_folder(t / "file"); }, {"file", "not a folder"});
  fs::create_directories(t / "flat");
  png(t / "flat/a.png", pattern(1, 4, 4));
  expect_error([&] { data::list_image_folder(t / "flat"); }, {"no class folders"});
  const std::string root = make_tree(t);
  fs::create_directories(root + "/dog");
  write_bytes(root + "/dog/readme.txt", "no images here");
  expect_error([&] { data::list_image_folder(root); }, {"dog", "no image files"});
}

TEST(ImageFolder, SymbolicLinkLoopIsAnErrorNotAHang) {
  TempDir t;
  const std::string root = make_tree(t);
  fs::create_directory_symlink("..", root + "/cat/sub/up");  // cat/sub/up -> cat
  expect_error([&] { data::list_image_folder(root); }, {"loop", "up"});
  // A link to a folder elsewhere is followed, as os.walk(followlinks=True) does.
  fs::remove(root + "/cat/sub/up");
  png(t / "elsewhere/e.png", pattern(11, 6, 5));
  fs::create_directory_symlink(t / "elsewhere", root + "/cat/linked");
  const auto listing = data::list_image_folder(root);
  EXPECT_EQ(std::count_if(listing.files.begin(), listing.files.end(),
                          [](const std::string& f) { return f.find("linked/e.png") != std::string::npos; }),
            1);
}

TEST(ImageFolder, UnreadableFilesAndFoldersAreNamed) {
  if (geteuid() == 0) {
    // root reads every file whatever its mode; the CLI test runs this case as the user nobody.
    GTEST_SKIP() << "running as root: permission errors cannot happen here (see ImageFolderCli)";
  }
  TempDir t;
  const std::string root = make_tree(t);
  ::chmod((root + "/ant/x.png").c_str(), 0);
  expect_error([&] { data::read_image_folder(root, no_cache()); }, {"x.png"});
  ::chmod((root + "/bee").c_str(), 0);
  expect_error([&] { data::list_image_folder(root); }, {"bee"});
  ::chmod((root + "/bee").c_str(), 0755);
}

TEST(ImageFolder, StratifiedSplitIsPerClassAndFollowsTheSeed) {
  const int64_t n = 103;
  auto labels = torch::cat({torch::zeros({50}, torch::kLong), torch::ones({40}, torch::kLong),
                            torch::full({13}, 2, torch::kLong)});
  auto images = torch::arange(n, torch::kLong).to(torch::kUInt8).view({n, 1, 1, 1}).expand({n, 3, 1, 1}).contiguous();
  data::ImageSet set(images, labels, {"a", "b", "c"});
  auto s1 = data::split_stratified(set, 0.2, 7);
  auto s2 = data::split_stratified(set, 0.2, 7);
  auto s3 = data::split_stratified(set, 0.2, 8);
  EXPECT_EQ(s1.val.labels().eq(0).sum().item<int64_t>(), 10);
  EXPECT_EQ(s1.val.labels().eq(1).sum().item<int64_t>(), 8);
  EXPECT_EQ(s1.val.labels().eq(2).sum().item<int64_t>(), 3);  // round(2.6)
  EXPECT_EQ(*s1.train.size() + *s1.val.size(), static_cast<size_t>(n));
  EXPECT_TRUE(torch::equal(s1.val.images(), s2.val.images()));
  EXPECT_FALSE(torch::equal(s1.val.images(), s3.val.images()));
  // Disjoint and covering: every image id appears once.
  auto ids = torch::cat({s1.train.images().select(1, 0).flatten(), s1.val.images().select(1, 0).flatten()});
  EXPECT_TRUE(torch::equal(std::get<0>(ids.to(torch::kLong).sort()), torch::arange(n, torch::kLong)));
  // Both parts keep the original order.
  auto v = s1.val.images().select(1, 0).flatten().to(torch::kLong);
  EXPECT_TRUE(torch::equal(v, std::get<0>(v.sort())));
  try {
    data::split_stratified(set, 1.0, 1);
    ADD_FAILURE() << "expected a SettingError";
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "val_fraction");
  }
}

TEST(ImageFolder, ParsesImageSizes) {
  EXPECT_EQ(data::parse_image_size("32"), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(data::parse_image_size("48,64"), (std::vector<int64_t>{48, 64}));
  EXPECT_EQ(data::parse_image_size("48x64"), (std::vector<int64_t>{48, 64}));
  for (const char* bad : {"", "0", "a", "32,", "-3", "100000"}) {
    try {
      data::parse_image_size(bad);
      ADD_FAILURE() << bad;
    } catch (const SettingError& e) {
      EXPECT_EQ(e.setting(), "image_size") << bad;
    }
  }
}
