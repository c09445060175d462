// The `download` subcommand, and `stats` downloading on its own, through the built program against a
// local HTTP server.
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include <gtest/gtest.h>

#include "support/download_fixture.h"

using namespace birdplane;
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

}  // namespace
#endif  // BIRDPLANE_WITH_DOWNLOAD
