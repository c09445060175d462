// The `download` subcommand, and `stats` downloading on its own, through the built program against a
// local HTTP server.
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "support/download_fixture.h"

using namespace birdplane;
namespace fs = std::filesystem;
using birdplane::fixtures::DownloadTest;
using birdplane::fixtures::kPerFile;

namespace {

class CliDownloadTest : public DownloadTest {};

TEST_F(CliDownloadTest, DownloadsThenSaysAlreadyPresent) {
  const std::string args = fmt::format("download --data-dir {} --url {} --md5 {} --no-progress", root_,
                                       server().url("good.tar.gz"), good_md5_);
  auto r = fixtures::run_birdplane(args, "BIRDPLANE_CIFAR10_ALLOW_SMALL=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CIFAR-10 is ready in " + target()), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");  // --no-progress, and stderr is not a terminal anyway
  expect_installed();

  r = fixtures::run_birdplane(args, "BIRDPLANE_CIFAR10_ALLOW_SMALL=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already present in " + target()), std::string::npos) << r.out;
  EXPECT_EQ(requests(), "GET /good.tar.gz range=-\n");
}

TEST_F(CliDownloadTest, WrongMd5ExitsWithCodeTwo) {
  const std::string url = server().url("good.tar.gz");
  auto r = fixtures::run_birdplane(
      fmt::format("download --data-dir {} --url {} --md5 {} --no-progress", root_, url,
                  "00000000000000000000000000000000"),
      "BIRDPLANE_CIFAR10_ALLOW_SMALL=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");  // no "ready" line for a failed download
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(url), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(good_md5_), std::string::npos) << r.err;
  expect_nothing_installed();
}

TEST_F(CliDownloadTest, StatsDownloadsFromTheEnvironmentUrl) {
  auto r = fixtures::run_birdplane(
      fmt::format("stats --data-dir {}", root_),
      fmt::format("BIRDPLANE_CIFAR10_URL={} BIRDPLANE_CIFAR10_MD5={} BIRDPLANE_CIFAR10_ALLOW_SMALL=1",
                  server().url("good.tar.gz"), good_md5_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(fmt::format("train split, {} images", 5 * kPerFile)), std::string::npos) << r.out;
  expect_installed();
}

// A full disk during the download or the extraction (simulated with a 4 KiB file-size limit, SIGXFSZ
// ignored so that writes fail with EFBIG): one message, exit 2, nothing installed, nothing left behind.
TEST_F(CliDownloadTest, AFullDiskFailsCleanly) {
  const std::string command = fmt::format("download --data-dir {} --url {} --md5 {} --no-progress", root_,
                                          server().url("good.tar.gz"), good_md5_);
  auto r = fixtures::run_shell("BIRDPLANE_CIFAR10_ALLOW_SMALL=1 bash -c 'trap \"\" XFSZ; ulimit -f 4; exec " +
                               std::string(BIRDPLANE_BINARY) + " " + command + "'");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one message
  EXPECT_FALSE(fs::exists(target()));
  EXPECT_TRUE(r.err.find("disk") != std::string::npos || r.err.find("too large") != std::string::npos) << r.err;
  // What was downloaded stays as the .part file the next run resumes from; nothing else is left.
  for (const auto& e : fs::directory_iterator(root_))
    EXPECT_EQ(e.path().filename().string(), "cifar-10-binary.tar.gz.part") << "left behind: " << e.path();
  // With room again, the same command installs it.
  r = fixtures::run_birdplane(command, "BIRDPLANE_CIFAR10_ALLOW_SMALL=1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_installed();
}

}  // namespace
#endif  // BIRDPLANE_WITH_DOWNLOAD
