// Only built with the downloader: libarchive comes in with it (linked through the birdplane
// library when BIRDPLANE_WITH_DOWNLOAD is on).
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include "support/archive_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace birdplane::fixtures {

ArchiveEntry file_entry(const std::string& name, std::string data) {
  ArchiveEntry e;
  e.type = ArchiveEntry::Type::kFile;
  e.name = name;
  e.data = std::move(data);
  return e;
}

std::vector<ArchiveEntry> entries_from_folder(const std::string& folder, const std::string& prefix) {
  std::vector<fs::path> paths;
  for (const auto& it : fs::recursive_directory_iterator(folder)) paths.push_back(it.path());
  std::sort(paths.begin(), paths.end());
  std::vector<ArchiveEntry> entries;
  ArchiveEntry top;
  top.type = ArchiveEntry::Type::kFolder;
  top.name = prefix + "/";
  entries.push_back(top);
  for (const auto& p : paths) {
    const std::string name = prefix + "/" + fs::relative(p, folder).generic_string();
    if (fs::is_directory(p)) {
      ArchiveEntry dir;
      dir.type = ArchiveEntry::Type::kFolder;
      dir.name = name + "/";
      entries.push_back(dir);
    } else {
      entries.push_back(file_entry(name, read_file(p.string())));
    }
  }
  return entries;
}

void write_tar_gz(const std::string& path, const std::vector<ArchiveEntry>& entries) {
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), &archive_write_free);
  auto check = [&](int r, const char* what) {
    if (r < ARCHIVE_WARN) {
      throw std::runtime_error(std::string("libarchive ") + what + ": " +
                               (archive_error_string(a.get()) ? archive_error_string(a.get()) : "?"));
    }
  };
  check(archive_write_add_filter_gzip(a.get()), "gzip filter");
  check(archive_write_set_format_pax_restricted(a.get()), "tar format");
  check(archive_write_open_filename(a.get(), path.c_str()), "open");
  for (const auto& e : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                       &archive_entry_free);
    archive_entry_set_pathname(entry.get(), e.name.c_str());
    archive_entry_set_mtime(entry.get(), 1700000000, 0);
    switch (e.type) {
      case ArchiveEntry::Type::kFile:
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_perm(entry.get(), 0644);
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.data.size()));
        break;
      case ArchiveEntry::Type::kFolder:
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        archive_entry_set_perm(entry.get(), 0755);
        break;
      case ArchiveEntry::Type::kSymlink:
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_perm(entry.get(), 0777);
        archive_entry_set_symlink(entry.get(), e.link_to.c_str());
        break;
      case ArchiveEntry::Type::kHardlink:
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_perm(entry.get(), 0644);
        archive_entry_set_hardlink(entry.get(), e.link_to.c_str());
        break;
      case ArchiveEntry::Type::kFifo:
        archive_entry_set_filetype(entry.get(), AE_IFIFO);
        archive_entry_set_perm(entry.get(), 0644);
        break;
    }
    check(archive_write_header(a.get(), entry.get()), "header");
    if (e.type == ArchiveEntry::Type::kFile && !e.data.empty()) {
      if (archive_write_data(a.get(), e.data.data(), e.data.size()) < 0) check(ARCHIVE_FATAL, "data");
    }
  }
  check(archive_write_close(a.get()), "close");
}

}  // namespace birdplane::fixtures
#endif  // BIRDPLANE_WITH_DOWNLOAD
