// A full disk while birdplane writes: simulated with a file-size limit (ulimit -f, with SIGXFSZ ignored so
// a write past the limit fails with EFBIG as on a full disk instead of killing the process). Every
// write must end in one message and exit 2, with the files already there left whole.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "support/fixtures.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {

// Runs birdplane with files limited to `kib` KiB.
birdplane::fixtures::RunResult limited(int kib, const std::string& args) {
  return run_shell("bash -c 'trap \"\" XFSZ; ulimit -f " + std::to_string(kib) + "; exec " +
                   std::string(BIRDPLANE_BINARY) + " " + args + "'");
}

}  // namespace

TEST(DiskFull, CheckpointExportAndCacheWritesFailCleanly) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird";
  auto r = run_birdplane("train --model book-small --epochs 1 --runs-dir " + (t / "runs") + " --name a" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = t / "runs/a";
  const std::string checkpoint = read_file(run + "/checkpoint.pt"), metrics = read_file(run + "/metrics.csv"),
                    config = read_file(run + "/config.json"), best = read_file(run + "/best.pt");
  ASSERT_GT(checkpoint.size(), 1u << 20);  // book-small's weights: about 6 MB

  // Resuming for another epoch cannot write its 6 MB checkpoint (nor best.pt, written first when the
  // validation improved) under a 64 KiB limit.
  auto full = limited(64, "train --resume " + run + " --epochs 2" + common);
  EXPECT_EQ(full.exit_code, 2) << full.out << full.err;
  EXPECT_TRUE(contains(full.err, "checkpoint.pt") || contains(full.err, "best.pt")) << full.err;
  EXPECT_EQ(read_file(run + "/checkpoint.pt"), checkpoint);
  EXPECT_EQ(read_file(run + "/best.pt"), best);
  EXPECT_EQ(read_file(run + "/config.json"), config);
  // metrics.csv is written before the checkpoint, so it may hold the failed epoch's row; the resume
  // drops rows the checkpoint does not reach.
  EXPECT_EQ(read_file(run + "/metrics.csv").substr(0, metrics.size()), metrics);
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_FALSE(contains(e.path().filename().string(), "tmp")) << "left behind: " << e.path();
  // ... and the run continues once there is room.
  auto more = run_birdplane("train --resume " + run + " --epochs 2" + common);
  EXPECT_EQ(more.exit_code, 0) << more.err;
  const std::string rows = read_file(run + "/metrics.csv");
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 3) << rows;  // header, epochs 1 and 2
  EXPECT_TRUE(contains(rows, "\n2,")) << rows;

  // metrics.csv is written before the checkpoint: when it is the write that fails (20 rows are over the
  // 1 KiB limit; the limit must leave room for the message itself, since stderr is a file here), it is
  // named and both files stay as they were.
  ASSERT_EQ(run_birdplane("train --model book-small --epochs 20 --runs-dir " + (t / "runs") + " --name m" + common)
                .exit_code,
            0);
  const std::string m = t / "runs/m";
  const std::string m_metrics = read_file(m + "/metrics.csv"), m_checkpoint = read_file(m + "/checkpoint.pt");
  ASSERT_GT(m_metrics.size(), 1024u);
  auto no_room = limited(1, "train --resume " + m + " --epochs 21" + common);
  EXPECT_EQ(no_room.exit_code, 2) << no_room.out << no_room.err;
  EXPECT_TRUE(contains(no_room.err, "metrics.csv")) << no_room.err;
  EXPECT_EQ(read_file(m + "/metrics.csv"), m_metrics);
  EXPECT_EQ(read_file(m + "/checkpoint.pt"), m_checkpoint);

  // An export over an existing file: the old file stays whole.
  const std::string out = t / "sd.pt";
  ASSERT_EQ(run_birdplane("export --checkpoint " + run + "/model.pt --out " + out).exit_code, 0);
  const std::string exported = read_file(out);
  auto e = limited(64, "export --checkpoint " + run + "/model.pt --out " + out);
  EXPECT_EQ(e.exit_code, 2) << e.err;
  EXPECT_TRUE(contains(e.err, "sd.pt")) << e.err;
  EXPECT_EQ(read_file(out), exported);

  // An image-folder cache that cannot be written is a note, not a failure: the images are in memory.
  const std::string photos = t / "photos";
  for (const char* c : {"a", "b"}) {
    fs::create_directories(photos + "/" + c);
    auto s = run_birdplane(std::string("show --index 0 --out ") + photos + "/" + c + "/x.png --scale 8" +
                           " --data-dir " + t.path() + " --no-download");
    ASSERT_EQ(s.exit_code, 0) << s.err;
  }
  auto stats = limited(64, "stats --image-folder " + photos + " --cache-dir " + (t / "cache"));
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_TRUE(contains(stats.err, "the cache was not written")) << stats.err;
}
