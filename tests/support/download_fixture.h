// The downloader's test fixture: a local HTTP server (tests/support/http_server.py on 127.0.0.1)
// serving fake CIFAR-10 archives, and a data folder to install them into. Shared by the library's
// download tests and the command line's.
#pragma once
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/download.h"
#include "support/archive_builder.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

extern char** environ;

namespace birdplane::fixtures {

namespace fs = std::filesystem;

inline constexpr const char* kPart = "cifar-10-binary.tar.gz.part";
inline constexpr int64_t kPerFile = 3;  // records per fake batch file

// Names in `dir` (empty when it does not exist), sorted.
inline std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// tests/support/http_server.py, started with posix_spawn (safe in a process that has threads) and
// stopped with SIGTERM. It also stops by itself after 30 s should this process die first.
class HttpServer {
 public:
  HttpServer(const std::string& folder, const std::string& log) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
    const std::string script = std::string(BIRDPLANE_SOURCE_DIR) + "/tests/support/http_server.py";
    std::vector<std::string> args = {"/usr/bin/python3", script, folder, "--log", log, "--lifetime", "30"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      pid_ = -1;
      throw std::runtime_error("could not start /usr/bin/python3 " + script);
    }
    std::string line;
    char c;
    while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(fds[0]);
    port_ = std::atoi(line.c_str());
    if (port_ <= 0) {
      stop();
      throw std::runtime_error("test HTTP server printed no port: '" + line + "'");
    }
  }
  ~HttpServer() { stop(); }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return fmt::format("http://127.0.0.1:{}/{}", port_, path);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class DownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(served_);
    fixtures::write_fake_cifar(tmp_ / "src", kPerFile);
    good_entries_ = fixtures::entries_from_folder(tmp_ / "src/cifar-10-batches-bin", data::kFolderName);
    good_md5_ = serve("good.tar.gz", good_entries_);
  }

  // Writes an archive of `entries` into the served folder; returns its MD5.
  std::string serve(const std::string& name, const std::vector<ArchiveEntry>& entries) {
    fixtures::write_tar_gz(served_ + "/" + name, entries);
    return data::md5_file(served_ + "/" + name);
  }

  HttpServer& server() {
    if (!server_) server_ = std::make_unique<HttpServer>(served_, log_);
    return *server_;
  }

  // Options for `file` on the local server: quiet, small files accepted, the good checksum.
  data::DownloadOptions options(const std::string& file) {
    data::DownloadOptions o;
    o.url = server().url(file);
    o.md5 = good_md5_;
    o.require_full_size = false;
    return o;
  }

  std::string requests() const { return fixtures::read_file(log_); }
  std::string target() const { return root_ + "/" + data::kFolderName; }

  // What a failed run must leave: no dataset, no .part, no temp folders.
  void expect_nothing_installed() {
    EXPECT_FALSE(fs::exists(target()));
    EXPECT_EQ(listing(root_), std::vector<std::string>{}) << "leftovers in " << root_;
  }

  // The fake data is installed and reads back through data::read_cifar10.
  void expect_installed() {
    ASSERT_TRUE(data::is_installed(target(), options("good.tar.gz")));
    auto train = data::read_cifar10(target(), data::Split::kTrain);
    ASSERT_EQ(*train.size(), static_cast<size_t>(5 * kPerFile));
    EXPECT_EQ(train.images()[4][1][2][3].item<uint8_t>(), fixtures::fake_pixel(4, 1, 2, 3));
    auto test = data::read_cifar10(target(), data::Split::kTest);
    EXPECT_EQ(*test.size(), static_cast<size_t>(kPerFile));
  }

  TempDir tmp_;
  std::string served_ = tmp_ / "served";
  std::string root_ = tmp_ / "data";
  std::string log_ = tmp_ / "requests.log";
  std::vector<ArchiveEntry> good_entries_;
  std::string good_md5_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace birdplane::fixtures
#endif  // BIRDPLANE_WITH_DOWNLOAD
