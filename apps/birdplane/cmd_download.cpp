// birdplane download: fetch the official CIFAR-10 binary archive, check it and install it.
#include <iostream>
#include <memory>
#include <string>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "commands.h"
#include "download_progress.h"
#include "flags.h"
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include "birdplane/data/download.h"
#endif

namespace birdplane::cli {
namespace {

struct DownloadCmdOptions {
  std::string data_dir;
  std::string url;  // empty: $BIRDPLANE_CIFAR10_URL, else the official address
  std::string md5;  // empty: $BIRDPLANE_CIFAR10_MD5, else the official checksum
  bool no_progress = false;
};

void run_download(const DownloadCmdOptions& o) {
#ifdef BIRDPLANE_WITH_DOWNLOAD
  auto options = download_options(o.no_progress);
  if (!o.url.empty()) options.url = o.url;
  if (!o.md5.empty()) options.md5 = o.md5;
  const std::string root = data_root(o.data_dir);
  if (const std::string dir = data::batches_dir(root); data::is_installed(dir, options)) {
    std::cout << "CIFAR-10 is already present in " << dir << "; nothing to do\n";
    return;
  }
  // Called before printing anything: on failure the only output is main's "error: ..." line.
  const std::string dir = data::ensure_cifar10(root, options);
  std::cout << "CIFAR-10 is ready in " << dir << "\n";
#else
  fail("this build of birdplane has no downloader (built with BIRDPLANE_WITH_DOWNLOAD=OFF); copy "
       "cifar-10-batches-bin/ into {} yourself, from {}",
       data_root(o.data_dir), "https://www.cs.toronto.edu/~kriz/cifar.html");
#endif
}

}  // namespace

void setup_download(CLI::App& app) {
  auto o = std::make_shared<DownloadCmdOptions>();
  auto* cmd = app.add_subcommand(
      "download", "Download the CIFAR-10 binary archive (about 170 MB), check its MD5 and unpack it "
                  "into <data-dir>/cifar-10-batches-bin; resumes an interrupted download");
  add_data_dir(*cmd, o->data_dir);
  cmd->add_option("--url", o->url,
                  "Where to download cifar-10-binary.tar.gz from (a mirror; http, https or file://); "
                  "default $BIRDPLANE_CIFAR10_URL, else the official address");
  cmd->add_option("--md5", o->md5,
                  "Expected MD5 of the archive (32 hex digits); default $BIRDPLANE_CIFAR10_MD5, else "
                  "the official checksum");
  cmd->add_flag("--no-progress", o->no_progress, "Do not draw a progress bar on stderr");
  cmd->callback([o] { run_download(*o); });
}

}  // namespace birdplane::cli
