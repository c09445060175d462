// Regression tests for what the fuzzers in fuzz/ found (scripts/fuzz, docs/security.md): each test
// feeds the input that failed, or its essence, through the same library call.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;

// fuzz_cifar_meta: batches.meta.txt naming a class twice was accepted, and --classes with that name
// then kept only the first of its two labels, silently dropping the other's images.
TEST(FuzzRegressions, CifarMetaWithANameTwiceIsRefused) {
  fixtures::TempDir tmp;
  fixtures::write_fake_batch(tmp / "test_batch.bin", {0, 7, 9});
  // The fuzzer's input, in essence: ten lines, "h" and "i" each twice, bytes that are not UTF-8.
  fixtures::write_text(tmp / "batches.meta.txt", "c\nd\n\xf5" "e\n\x9a:\n(\ng\xff\xff:\nh\ni\nh\ni\n");
  fixtures::expect_error([&] { data::read_class_names(tmp.path()); },
                         {"batches.meta.txt", "class name 'h' appears twice", "labels 6 and 8"});
  fixtures::expect_error([&] { data::read_cifar10(tmp.path(), data::Split::kTest, {"i"}); },
                         {"batches.meta.txt", "appears twice"});
  // Ten different names are read as before, blank lines and surrounding spaces ignored.
  fixtures::write_text(tmp / "batches.meta.txt", "a\n b \n\nc\nd\ne\nf\ng\nh\ni\nj\n");
  EXPECT_EQ(data::read_class_names(tmp.path()),
            (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
  const auto two = data::read_cifar10(tmp.path(), data::Split::kTest, {"j", "a"});
  EXPECT_EQ(two.labels().size(0), 2);
}

// fuzz_config_resume: an epoch in metrics.csv beyond int64 (or NaN) was converted to an integer
// before it was checked, undefined behaviour (UBSan: "2.22222e+30 is outside the range of
// representable values of type 'long'").
TEST(FuzzRegressions, MetricsEpochOutOfRangeIsAnErrorNotAnIntegerOverflow) {
  fixtures::TempDir tmp;
  // The fuzzer's input: a header line, then an epoch of 2.2e30 (the cells after it are never read).
  const std::string crash = "11" + std::string(33, '2') + std::string("\x01\0\0\n", 4) + std::string(31, '2');
  fixtures::write_text(tmp / "m.csv", crash);
  fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"m.csv line 2", "epoch 2222"});
  for (const std::string epoch : {"1e30", "-1e30", "nan", "inf", "1.5", "9223372036854775808"}) {
    fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n" + epoch + ",0.5\n");
    fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"m.csv line 2", "epoch " + epoch});
  }
  fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n1,0.5\n2,0.25\n");
  const auto rows = train::read_metrics(tmp / "m.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].epoch, 2);
  EXPECT_DOUBLE_EQ(rows[1].train_loss, 0.25);
}

// fuzz_image_folder_cache: the cache's JSON header is not covered by its checksum, and a header whose
// class names (or channels, size, image count) differ from the folder's was accepted: a damaged
// class name came back as the set's class name.
TEST(FuzzRegressions, ImageFolderCacheHeaderThatDoesNotMatchTheFolderIsNotUsed) {
  fixtures::TempDir tmp;
  for (const std::string cls : {"cat", "dog"}) {
    fs::create_directories(tmp / ("tree/" + cls));
    for (const std::string name : {"a", "b"}) {
      std::string ppm = "P6\n4 4\n255\n";
      for (int i = 0; i < 48; ++i) ppm.push_back(static_cast<char>(cls[0] + name[0] + i));
      fixtures::write_text(tmp / ("tree/" + cls + "/" + name + ".ppm"), ppm);
    }
  }
  data::ImageFolderOptions options;
  options.cache_dir = tmp / "cache";
  data::ImageFolderReport first, second;
  data::read_image_folder(tmp / "tree", options, &first);
  ASSERT_FALSE(first.cache_file.empty()) << first.cache_note;
  data::read_image_folder(tmp / "tree", options, &second);
  ASSERT_TRUE(second.from_cache) << second.cache_note;  // an intact cache is used
  const std::string intact = fixtures::read_file(first.cache_file);
  // Each damage keeps the file's length, so only the header check can notice it.
  const std::vector<std::pair<std::string, std::string>> damages = {
      {"\"dog\"", "\"`og\""},            // the fuzzer's input: a class name changed
      {"\"shape\":[3,4,4]", "\"shape\":[1,6,8]"},  // the same bytes as one channel
  };
  for (const auto& [from, to] : damages) {
    std::string damaged = intact;
    const auto at = damaged.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    damaged.replace(at, from.size(), to);
    fixtures::write_text(first.cache_file, damaged);
    data::ImageFolderReport report;
    const auto set = data::read_image_folder(tmp / "tree", options, &report);
    EXPECT_FALSE(report.from_cache) << to;
    EXPECT_NE(report.cache_note.find("does not match the folder"), std::string::npos) << report.cache_note;
    EXPECT_EQ(set.class_names(), (std::vector<std::string>{"cat", "dog"}));
    EXPECT_EQ(set.images().sizes(), (std::vector<int64_t>{4, 3, 4, 4}));
  }
}

// fuzz_config_resume: a whole-number setting written as a huge floating-point number in config.json
// ("epochs": 1.2e118) reached nlohmann's get<int64_t>(), a cast with undefined behaviour (UBSan:
// "1.22222e+118 is outside the range of representable values of type 'long'").
TEST(FuzzRegressions, ResumedConfigWithAFloatForAWholeNumberIsRefused) {
  nlohmann::json j = train::TrainConfig().to_json();
  EXPECT_NO_THROW(train::TrainConfig::from_json(j));
  for (const std::string key : {"epochs", "batch_size", "seed", "max_pixels"}) {
    nlohmann::json bad = j;
    bad[key] = 1.2e118;
    fixtures::expect_error([&] { train::TrainConfig::from_json(bad); }, {key, "not a whole number"});
  }
  nlohmann::json bad = j;
  bad["hidden"] = {512, 1e300};
  fixtures::expect_error([&] { train::TrainConfig::from_json(bad); }, {"hidden", "not a whole number"});
}
