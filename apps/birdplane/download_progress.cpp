#include "download_progress.h"

#ifdef BIRDPLANE_WITH_DOWNLOAD
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace birdplane::cli {
namespace {

std::string human_bytes(double bytes) {
  if (bytes < 1e3) return fmt::format("{:.0f} B", bytes);
  if (bytes < 1e6) return fmt::format("{:.1f} kB", bytes / 1e3);
  if (bytes < 1e9) return fmt::format("{:.1f} MB", bytes / 1e6);
  return fmt::format("{:.2f} GB", bytes / 1e9);
}

void draw(const data::DownloadProgress& p) {
  std::string line = fmt::format("{}  {}", p.file, human_bytes(static_cast<double>(p.bytes)));
  if (p.total > 0) {
    line += " / " + human_bytes(static_cast<double>(p.total));
    line += fmt::format(" ({:.0f}%)", 100.0 * static_cast<double>(p.bytes) / static_cast<double>(p.total));
  }
  line += "  " + human_bytes(p.bytes_per_second) + "/s";
  if (p.total > 0 && p.bytes_per_second > 0 && !p.finished) {
    const auto eta = static_cast<int64_t>(static_cast<double>(p.total - p.bytes) / p.bytes_per_second);
    line += fmt::format("  ETA {}:{:02d}", eta / 60, eta % 60);
  }
  // Padded so a shorter line fully covers the previous one; the last report ends the line.
  fmt::print(stderr, "\r{:<78}{}", line, p.finished ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace

void attach_download_progress(data::DownloadOptions& options, bool quiet) {
  if (!quiet && ::isatty(STDERR_FILENO)) options.on_progress = draw;
  options.on_note = [](const std::string& note) { fmt::print(stderr, "{}\n", note); };
}

}  // namespace birdplane::cli
#endif
