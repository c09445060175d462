#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::expect_error;
using birdplane::fixtures::TempDir;


TEST(Cifar10, ReadsFakeTrainAndTestSplits) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 7);
  auto train = data::read_cifar10(dir, data::Split::kTrain);
  auto test = data::read_cifar10(dir, data::Split::kTest);
  ASSERT_EQ(*train.size(), 35u);
  ASSERT_EQ(*test.size(), 7u);
  EXPECT_EQ(train.images().sizes(), (std::vector<int64_t>{35, 3, 32, 32}));
  EXPECT_EQ(train.images().scalar_type(), torch::kUInt8);
  EXPECT_EQ(train.labels().scalar_type(), torch::kInt64);
  // Record 9 of the train split is in data_batch_2 at position 2; pixel values follow fake_pixel.
  auto img = train.images()[9];
  for (int c = 0; c < 3; ++c)
    for (int y : {0, 5, 31})
      for (int x : {0, 13, 31}) EXPECT_EQ(img[c][y][x].item<uint8_t>(), fixtures::fake_pixel(9, c, y, x));
  EXPECT_EQ(train.labels()[9].item<int64_t>(), 9);
  EXPECT_EQ(test.labels()[0].item<int64_t>(), 0);  // labels start at 1000 % 10
  EXPECT_EQ(train.class_names(), data::default_class_names());
}

TEST(Cifar10, GetAndGetBatchAgree) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 4);
  auto train = data::read_cifar10(dir, data::Split::kTrain);
  std::vector<size_t> idx = {3, 17, 0, 11};
  auto batch = train.get_batch(idx);
  ASSERT_EQ(batch.size(), 4u);
  for (size_t i = 0; i < idx.size(); ++i) {
    auto one = train.get(idx[i]);
    EXPECT_TRUE(torch::equal(batch[i].data, one.data));
    EXPECT_EQ(batch[i].target.item<int64_t>(), one.target.item<int64_t>());
  }
  auto stacked = train.batch(torch::tensor({3, 17, 0, 11}, torch::kInt64));
  EXPECT_TRUE(torch::equal(stacked.data[1], train.get(17).data));
}

TEST(Cifar10, WorksWithLibTorchDataLoader) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 4);
  auto loader = torch::data::make_data_loader(
      data::read_cifar10(dir, data::Split::kTrain).map(torch::data::transforms::Stack<>()),
      torch::data::DataLoaderOptions().batch_size(8));
  int64_t seen = 0;
  for (auto& b : *loader) {
    EXPECT_EQ(b.data.size(1), 3);
    seen += b.data.size(0);
  }
  EXPECT_EQ(seen, 20);
}

TEST(Cifar10, SubsetRemapsLabelsInTheOrderGiven) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 10);
  auto train = data::read_cifar10(dir, data::Split::kTrain);
  auto two = train.subset({"bird", "airplane"});
  EXPECT_EQ(*two.size(), 10u);  // 5 of each
  EXPECT_EQ(two.class_names(), (std::vector<std::string>{"bird", "airplane"}));
  // The first image kept is record 0 (airplane, now label 1), then record 2 (bird, now 0).
  EXPECT_EQ(two.labels()[0].item<int64_t>(), 1);
  EXPECT_EQ(two.labels()[1].item<int64_t>(), 0);
  EXPECT_TRUE(torch::equal(two.images()[1], train.images()[2]));
  expect_error([&] { train.subset({"airplane", "zebra"}); },
               {"classes", "zebra", "airplane, automobile, bird"});
}

TEST(Cifar10, ParsesClassListsAndSplits) {
  EXPECT_EQ(data::parse_class_list(" airplane, bird "), (std::vector<std::string>{"airplane", "bird"}));
  EXPECT_TRUE(data::parse_class_list("").empty());
  EXPECT_EQ(data::parse_split("test"), data::Split::kTest);
  expect_error([] { data::parse_split("valid"); }, {"split", "valid", "train", "test"});
}

TEST(Cifar10, ResolvesDataFolders) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 1);
  EXPECT_EQ(data::batches_dir(tmp.path()), dir);
  EXPECT_EQ(data::batches_dir(dir), dir);
  EXPECT_EQ(data::batches_dir("/nowhere/x"), "/nowhere/x/cifar-10-batches-bin");
  EXPECT_EQ(data::resolve_data_root("given"), "given");
  EXPECT_EQ(data::resolve_data_root("", "from-env"), "from-env");
  EXPECT_EQ(data::resolve_data_root(""), "data");
  EXPECT_FALSE(data::is_complete(dir));  // only 1 record per file
}

TEST(Cifar10, ReadingOnlySomeClassesEqualsReadingAllThenTakingTheSubset) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 13);
  for (const auto split : {data::Split::kTrain, data::Split::kTest}) {
    auto all = data::read_cifar10(dir, split);
    for (const std::vector<std::string>& classes :
         {std::vector<std::string>{"bird", "airplane"}, {"truck"}, std::vector<std::string>{}}) {
      data::ChannelStats stats;
      auto some = data::read_cifar10(dir, split, classes, &stats);
      auto reference = all.subset(classes);
      ASSERT_EQ(*some.size(), *reference.size());
      EXPECT_TRUE(torch::equal(some.images(), reference.images()));
      EXPECT_TRUE(torch::equal(some.labels(), reference.labels()));
      EXPECT_EQ(some.class_names(), reference.class_names());
      // The statistics are those of the whole split (every class), to the last bit.
      auto whole = data::channel_stats(all.images());
      EXPECT_EQ(stats.mean, whole.mean);
      EXPECT_EQ(stats.std, whole.std);
      EXPECT_EQ(stats.pixels_per_channel, whole.pixels_per_channel);
    }
  }
  expect_error([&] { data::read_cifar10(dir, data::Split::kTrain, {"zebra"}); }, {"classes", "zebra"});
  expect_error([&] { data::read_cifar10(tmp / "nothing", data::Split::kTrain, {}); },
               {"nothing", "does not exist"});
}

TEST(Cifar10, RejectsMissingShortOversizedAndBadLabels) {
  TempDir tmp;
  auto dir = fixtures::write_fake_cifar(tmp.path(), 3);
  expect_error([&] { data::read_cifar10(tmp / "nothing", data::Split::kTrain); }, {"nothing", "does not exist"});
  // A typed error: the front end says how to get the data (the library names no command).
  try {
    data::read_cifar10(tmp / "nothing", data::Split::kTrain);
    ADD_FAILURE() << "no error for a missing folder";
  } catch (const data::MissingDataError& e) {
    EXPECT_EQ(e.path(), tmp.path());
    EXPECT_EQ(std::string(e.what()).find("`birdplane"), std::string::npos) << e.what();
  }
  fs::remove(fs::path(dir) / "data_batch_3.bin");
  expect_error([&] { data::read_cifar10(dir, data::Split::kTrain); }, {"data_batch_3.bin", "missing"});
  // Short: a record cut in half.
  {
    std::ofstream f(fs::path(dir) / "data_batch_3.bin", std::ios::binary);
    f << std::string(1000, '\1');
  }
  expect_error([&] { data::read_cifar10(dir, data::Split::kTrain); },
               {"data_batch_3.bin", "1000 bytes", "3073", "short"});
  // Oversized: more records than a batch file holds.
  fs::resize_file(fs::path(dir) / "data_batch_3.bin", (data::kRecordsPerFile + 1) * data::kRecordBytes);
  expect_error([&] { data::read_cifar10(dir, data::Split::kTrain); }, {"data_batch_3.bin", "oversized"});
  // A label byte over 9.
  fixtures::write_fake_batch(dir + "/data_batch_3.bin", {1, 2, 12});
  expect_error([&] { data::read_cifar10(dir, data::Split::kTrain); },
               {"data_batch_3.bin", "record 2", "label 12", "0 to 9"});
}

TEST(Cifar10Real, SizesLabelsAndSubsets) {
  auto dir = fixtures::real_data_dir();
  if (dir.empty()) GTEST_SKIP() << "BIRDPLANE_DATA is not set to a complete CIFAR-10 folder";
  auto train = data::read_cifar10(dir, data::Split::kTrain);
  auto test = data::read_cifar10(dir, data::Split::kTest);
  EXPECT_EQ(*train.size(), 50000u);
  EXPECT_EQ(*test.size(), 10000u);
  auto first = [](const data::ImageSet& d) {
    auto l = d.labels().slice(0, 0, 10);
    return std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + 10);
  };
  EXPECT_EQ(first(train), (std::vector<int64_t>{6, 9, 9, 4, 1, 1, 2, 7, 8, 3}));
  EXPECT_EQ(first(test), (std::vector<int64_t>{3, 8, 8, 0, 6, 6, 1, 6, 3, 1}));
  auto train_counts = torch::bincount(train.labels());
  auto test_counts = torch::bincount(test.labels());
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(train_counts[c].item<int64_t>(), 5000);
    EXPECT_EQ(test_counts[c].item<int64_t>(), 1000);
  }
  EXPECT_EQ(*train.subset({"airplane", "bird"}).size(), 10000u);
  EXPECT_EQ(*test.subset({"airplane", "bird"}).size(), 2000u);
}
