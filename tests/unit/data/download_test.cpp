// The CIFAR-10 downloader against a local HTTP server (tests/support/http_server.py on 127.0.0.1):
// resuming, checksums, hostile archives, crash-safe installation (the subcommand: tests/cli/download_cli_test.cpp).
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/download_fixture.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::ArchiveEntry;
using birdplane::fixtures::TempDir;

namespace {

using fixtures::DownloadTest;
using fixtures::expect_error;
using fixtures::kPart;
using fixtures::kPerFile;
using fixtures::listing;

// ---------------------------------------------------------------------------------------------

TEST(DownloadMd5, MatchesKnownDigestsAndMd5sum) {
  TempDir tmp;
  std::ofstream(tmp / "empty").close();
  std::ofstream(tmp / "abc") << "abc";
  EXPECT_EQ(data::md5_file(tmp / "empty"), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(data::md5_file(tmp / "abc"), "900150983cd24fb0d6963f7d28e17f72");  // RFC 1321
  // A file larger than the 1 MiB read buffer, against coreutils.
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);
  std::ofstream(tmp / "big", std::ios::binary) << big;
  auto r = fixtures::run_shell("md5sum " + (tmp / "big"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data::md5_file(tmp / "big"), r.out.substr(0, 32));
  expect_error([&] { data::md5_file(tmp / "missing"); }, {tmp / "missing", "MD5"});
}

TEST(DownloadDefaults, TheLibraryReadsNoEnvironment) {
  // $BIRDPLANE_CIFAR10_* belong to the command line (tests/cli covers them); the library's defaults are
  // the official archive whatever the environment says.
  ::setenv("BIRDPLANE_CIFAR10_URL", "http://mirror.example/c.tgz", 1);
  ::setenv("BIRDPLANE_CIFAR10_MD5", "0123456789abcdef0123456789abcdef", 1);
  ::setenv("BIRDPLANE_CIFAR10_ALLOW_SMALL", "1", 1);
  data::DownloadOptions options;
  ::unsetenv("BIRDPLANE_CIFAR10_URL");
  ::unsetenv("BIRDPLANE_CIFAR10_MD5");
  ::unsetenv("BIRDPLANE_CIFAR10_ALLOW_SMALL");
  EXPECT_EQ(options.url, data::kCifar10Url);
  EXPECT_EQ(options.md5, data::kCifar10Md5);
  EXPECT_TRUE(options.require_full_size);
}

TEST_F(DownloadTest, InstallsVerifiedArchiveAndSecondCallDoesNothing) {
  const auto dir = data::ensure_cifar10(root_, options("good.tar.gz"));
  EXPECT_EQ(dir, target());
  expect_installed();
  // Only the dataset is left: no .part, no archive, no temp folder.
  EXPECT_EQ(listing(root_), std::vector<std::string>{data::kFolderName});
  EXPECT_EQ(requests(), "GET /good.tar.gz range=-\n");
  // With the server gone, a second call must not need it.
  const auto opts = options("good.tar.gz");
  server().stop();
  EXPECT_EQ(data::ensure_cifar10(root_, opts), target());
  EXPECT_EQ(data::ensure_cifar10(target(), opts), target());  // root given as the folder itself
}

TEST_F(DownloadTest, ReportsProgressThroughItsCallbackNotTheTerminal) {
  auto o = options("good.tar.gz");
  std::vector<data::DownloadProgress> reports;
  o.on_progress = [&](const data::DownloadProgress& p) { reports.push_back(p); };
  data::ensure_cifar10(root_, o);
  ASSERT_FALSE(reports.empty());
  const auto size = static_cast<int64_t>(fs::file_size(served_ + "/good.tar.gz"));
  EXPECT_TRUE(reports.back().finished);
  EXPECT_EQ(reports.back().bytes, size);
  EXPECT_EQ(reports.back().total, size);
  EXPECT_EQ(reports.back().file, "good.tar.gz");
  for (size_t i = 1; i < reports.size(); ++i) EXPECT_GE(reports[i].bytes, reports[i - 1].bytes);
  expect_installed();
}

TEST_F(DownloadTest, FileUrlWorks) {
  auto o = options("good.tar.gz");
  o.url = "file://" + served_ + "/good.tar.gz";
  EXPECT_EQ(data::ensure_cifar10(root_, o), target());
  expect_installed();
  EXPECT_EQ(listing(root_), std::vector<std::string>{data::kFolderName});
}

TEST_F(DownloadTest, WrongChecksumInstallsNothing) {
  auto o = options("good.tar.gz");
  o.md5 = "0123456789ABCDEF0123456789abcdef";  // upper case is accepted as the same checksum
  expect_error([&] { data::ensure_cifar10(root_, o); },
               {o.url, "0123456789abcdef0123456789abcdef", good_md5_, "MD5"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, MalformedChecksumIsRefusedBeforeDownloading) {
  auto o = options("good.tar.gz");
  o.md5 = "c32a1d4ab5d03f12";
  expect_error([&] { data::ensure_cifar10(root_, o); }, {"md5: ", "c32a1d4ab5d03f12", "32 hexadecimal"});
  EXPECT_EQ(requests(), "");
}

TEST_F(DownloadTest, TruncatedTransferKeepsPartAndResumes) {
  const auto archive_size = static_cast<int64_t>(fs::file_size(served_ + "/good.tar.gz"));
  auto bad = options("truncate/good.tar.gz");
  expect_error([&] { data::ensure_cifar10(root_, bad); }, {bad.url, "stopped after", "resume"});
  EXPECT_FALSE(fs::exists(target()));
  ASSERT_TRUE(fs::exists(root_ + "/" + kPart));
  const auto kept = static_cast<int64_t>(fs::file_size(root_ + "/" + kPart));
  EXPECT_EQ(kept, archive_size / 2);

  EXPECT_EQ(data::ensure_cifar10(root_, options("good.tar.gz")), target());
  expect_installed();
  // The second request asked only for the missing bytes.
  EXPECT_NE(requests().find(fmt::format("GET /good.tar.gz range=bytes={}-\n", kept)), std::string::npos)
      << requests();
  EXPECT_EQ(listing(root_), std::vector<std::string>{data::kFolderName});
}

TEST_F(DownloadTest, ServerIgnoringRangeMeansStartingOver) {
  expect_error([&] { data::ensure_cifar10(root_, options("truncate/good.tar.gz")); }, {"stopped after"});
  const auto kept = fs::file_size(root_ + "/" + kPart);
  EXPECT_EQ(data::ensure_cifar10(root_, options("norange/good.tar.gz")), target());
  expect_installed();
  // Asked to resume, got a 200, asked again for the whole file.
  EXPECT_NE(requests().find(fmt::format("GET /norange/good.tar.gz range=bytes={}-\n"
                                        "GET /norange/good.tar.gz range=-\n",
                                        kept)),
            std::string::npos)
      << requests();
}

TEST_F(DownloadTest, CompletePartFromACrashedRunIsVerifiedNotDownloadedAgain) {
  // A run that died after downloading everything but before installing.
  fs::create_directories(root_);
  fs::copy_file(served_ + "/good.tar.gz", root_ + "/" + kPart);
  const auto size = fs::file_size(root_ + "/" + kPart);
  EXPECT_EQ(data::ensure_cifar10(root_, options("good.tar.gz")), target());
  expect_installed();
  // One request for the bytes past the end (416), no full download.
  EXPECT_EQ(requests(), fmt::format("GET /good.tar.gz range=bytes={}-\n", size));
}

TEST_F(DownloadTest, OversizedJunkPartIsReplacedByAFreshDownload) {
  fs::create_directories(root_);
  std::ofstream(root_ + "/" + kPart, std::ios::binary)
      << std::string(fs::file_size(served_ + "/good.tar.gz") + 10, 'x');
  EXPECT_EQ(data::ensure_cifar10(root_, options("good.tar.gz")), target());
  expect_installed();
  EXPECT_NE(requests().find("GET /good.tar.gz range=-\n"), std::string::npos) << requests();
}

TEST_F(DownloadTest, ServerDownNamesUrlAndSuggestsDataDir) {
  auto o = options("good.tar.gz");
  server().stop();  // nothing listens on that port now
  expect_error([&] { data::ensure_cifar10(root_, o); },
               {"could not download " + o.url, "Check your network", "data folder"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, HttpErrorNamesUrlAndStatus) {
  auto o = options("missing.tar.gz");
  expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, "HTTP 404", "Check the address"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, RefusesHostileEntries) {
  const std::string outside = tmp_ / "outside";
  fs::create_directories(outside);
  struct Case {
    std::string what;
    ArchiveEntry entry;
    std::string reason;
  };
  auto make = [](ArchiveEntry::Type type, std::string name, std::string link) {
    ArchiveEntry e;
    e.type = type;
    e.name = std::move(name);
    e.link_to = std::move(link);
    e.data = "pwned";
    return e;
  };
  using T = ArchiveEntry::Type;
  const std::vector<Case> cases = {
      {"dot-dot", make(T::kFile, "../evil.txt", ""), "'..'"},
      {"deep dot-dot", make(T::kFile, "cifar-10-batches-bin/../../../outside/evil.txt", ""), "'..'"},
      {"absolute", make(T::kFile, outside + "/evil.txt", ""), "absolute"},
      {"symlink", make(T::kSymlink, "cifar-10-batches-bin/escape", outside), "symbolic link"},
      {"hardlink", make(T::kHardlink, "cifar-10-batches-bin/passwd", "/etc/passwd"), "hard link"},
      {"fifo", make(T::kFifo, "cifar-10-batches-bin/pipe", ""), "not a regular file"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    // The hostile entry comes after the good files, so cleanup of a half extraction is tested too.
    auto entries = good_entries_;
    entries.push_back(c.entry);
    entries.push_back(fixtures::file_entry("cifar-10-batches-bin/escape/evil.txt", "pwned"));
    auto o = options("hostile.tar.gz");
    o.md5 = serve("hostile.tar.gz", entries);
    expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, c.entry.name, c.reason, "nothing was installed"});
    expect_nothing_installed();
    EXPECT_EQ(listing(outside), std::vector<std::string>{});
    EXPECT_FALSE(fs::exists(tmp_ / "evil.txt"));
  }
}

TEST_F(DownloadTest, RefusesEntryOverTheSizeLimit) {
  auto entries = good_entries_;
  entries.push_back(fixtures::file_entry("cifar-10-batches-bin/zeros.bin", std::string(1 << 20, '\0')));
  auto o = options("bomb.tar.gz");
  o.md5 = serve("bomb.tar.gz", entries);
  o.max_entry_bytes = 100 << 10;
  ASSERT_LT(fs::file_size(served_ + "/bomb.tar.gz"), 100u << 10);  // small on the wire, big unpacked
  expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, "zeros.bin", "102400", "decompression bomb"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, StopsWhenTheTotalUnpackedExceedsTheLimit) {
  auto o = options("good.tar.gz");
  o.max_extract_bytes = 4 * kPerFile * data::kRecordBytes;  // the 5th of 6 batch files crosses it
  expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, "in all", std::to_string(o.max_extract_bytes)});
  expect_nothing_installed();
}

TEST_F(DownloadTest, RefusesArchiveWithoutTheDatasetFiles) {
  auto o = options("other.tar.gz");
  o.md5 = serve("other.tar.gz", {fixtures::file_entry("cifar-10-batches-py/data_batch_1", "pickle")});
  expect_error([&] { data::ensure_cifar10(root_, o); },
               {o.url, "does not hold the expected CIFAR-10 files", "cifar-10-batches-bin", "binary version"});
  expect_nothing_installed();

  auto partial = good_entries_;
  partial.erase(std::remove_if(partial.begin(), partial.end(),
                               [](const ArchiveEntry& e) { return e.name.find("test_batch") != std::string::npos; }),
                partial.end());
  o.md5 = serve("other.tar.gz", partial);
  expect_error([&] { data::ensure_cifar10(root_, o); }, {"test_batch.bin is missing"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, RefusesFilesThatAreNotTarGz) {
  std::ofstream(served_ + "/page.html") << "<html>Moved to a new server</html>";
  auto o = options("page.html");
  o.md5 = data::md5_file(served_ + "/page.html");
  expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, "not a .tar.gz archive", "check the address"});
  expect_nothing_installed();

  // A gzip stream cut short (the checksum given matches the cut file, as a bad mirror might).
  const std::string good = fixtures::read_file(served_ + "/good.tar.gz");
  std::ofstream(served_ + "/cut.tar.gz", std::ios::binary) << good.substr(0, good.size() / 2);
  o = options("cut.tar.gz");
  o.md5 = data::md5_file(served_ + "/cut.tar.gz");
  expect_error([&] { data::ensure_cifar10(root_, o); }, {o.url, "damaged", "nothing was installed"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, FullSizeCheckRejectsTinyFiles) {
  auto o = options("good.tar.gz");
  o.require_full_size = true;
  expect_error([&] { data::ensure_cifar10(root_, o); },
               {"data_batch_1.bin has " + std::to_string(kPerFile * data::kRecordBytes) + " bytes",
                "expected 30730000"});
  expect_nothing_installed();
}

TEST_F(DownloadTest, ReplacesAnIncompleteTargetAndRemovesLeftovers) {
  fixtures::write_fake_cifar(root_, 1);
  fs::remove(target() + "/test_batch.bin");
  std::ofstream(target() + "/stale.txt") << "old";
  fs::create_directories(root_ + "/.cifar-10-extract-dead01/cifar-10-batches-bin");  // a crashed run
  EXPECT_EQ(data::ensure_cifar10(root_, options("good.tar.gz")), target());
  expect_installed();
  EXPECT_FALSE(fs::exists(target() + "/stale.txt"));
  EXPECT_EQ(listing(root_), std::vector<std::string>{data::kFolderName});
}

TEST_F(DownloadTest, FailedDownloadLeavesAnExistingFolderUntouched) {
  fixtures::write_fake_cifar(root_, 1);
  fs::remove(target() + "/test_batch.bin");
  std::ofstream(target() + "/stale.txt") << "old";
  const auto before = listing(target());
  auto o = options("good.tar.gz");
  o.md5 = "ffffffffffffffffffffffffffffffff";
  expect_error([&] { data::ensure_cifar10(root_, o); }, {"ffffffffffffffffffffffffffffffff"});
  EXPECT_EQ(listing(target()), before);
  EXPECT_EQ(fixtures::read_file(target() + "/stale.txt"), "old");
  EXPECT_EQ(listing(root_), std::vector<std::string>{data::kFolderName});
}

}  // namespace
#endif  // BIRDPLANE_WITH_DOWNLOAD
