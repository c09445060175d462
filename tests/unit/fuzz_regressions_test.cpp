// Regression tests for what the fuzzers in fuzz/ found (scripts/fuzz, docs/security.md): each test
// feeds the input that failed, or its essence, through the same library call.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

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
