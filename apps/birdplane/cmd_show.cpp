// birdplane show: writes one CIFAR-10 image, or a captioned grid of them, as a PNG; the book's
// plt.imshow(img_t.permute(1, 2, 0)) for a terminal without a display.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <regex>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/data/image_io.h"
#include "commands.h"
#include "flags.h"
#include "progress.h"

namespace birdplane::cli {
namespace {

struct ShowOptions {
  std::string data_dir;
  std::string split = "train";
  std::string classes;
  int64_t index = 0;
  std::string grid;  // "RxC"; empty shows one image
  int scale = 0;     // 0: 8 for one image, 3 for a grid
  std::string out;
  bool no_download = false;
  std::string image_folder;
  FolderFlags folder;
};

struct GridShape {
  int rows = 0;
  int cols = 0;
};

// Grids beyond 64x64 (4096 images, a ~6000-pixel-wide PNG at scale 3) are typing mistakes.
constexpr int kMaxGridSide = 64;

GridShape parse_grid(const std::string& text) {
  static const std::regex kPattern(R"(\s*(\d{1,4})\s*[xX]\s*(\d{1,4})\s*)");
  std::smatch m;
  BIRDPLANE_CHECK(std::regex_match(text, m, kPattern),
                  "--grid {}: expected ROWSxCOLS with positive numbers, e.g. --grid 8x8", text);
  GridShape g{std::stoi(m[1]), std::stoi(m[2])};
  BIRDPLANE_CHECK(g.rows >= 1 && g.cols >= 1 && g.rows <= kMaxGridSide && g.cols <= kMaxGridSide,
                  "--grid {}: rows and columns must be 1 to {}, e.g. --grid 8x8", text, kMaxGridSide);
  return g;
}

bool ends_with_png(const std::string& path) {
  if (path.size() < 4) return false;
  return lowercase(path.substr(path.size() - 4)) == ".png";
}

// Checked before the data is loaded, so a typo in --out fails at once instead of after reading
// 150 MB; write_png checks the folder again when it writes.
void check_out(const std::string& out) {
  BIRDPLANE_CHECK(ends_with_png(out), "--out {}: the file name must end in .png (show writes PNG only)", out);
  const std::filesystem::path p(out);
  const std::filesystem::path folder = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  BIRDPLANE_CHECK(std::filesystem::is_directory(folder, ec),
                  "--out {}: folder {} does not exist; create it first (mkdir -p {})", out, folder.string(),
                  folder.string());
}

void run_show(const ShowOptions& o) {
  check_out(o.out);
  const bool is_grid = !o.grid.empty();
  const GridShape shape = is_grid ? parse_grid(o.grid) : GridShape{1, 1};
  const int scale = o.scale > 0 ? o.scale : (is_grid ? 3 : 8);
  const auto class_list = data::parse_class_list(o.classes);
  data::ImageSet set = [&] {
    if (!o.image_folder.empty()) {
      auto options = folder_options(o.folder);
      options.classes = class_list;
      return read_folder_with_progress(o.image_folder, options);
    }
    auto all = load_split(o.data_dir, data::parse_split(o.split), !o.no_download);
    // subset() of an empty list copies the whole split; skip it when no classes are named.
    return class_list.empty() ? std::move(all) : all.subset(class_list);
  }();
  const int64_t available = set.images().size(0);
  const std::string which =
      fmt::format("{}{}", o.image_folder.empty() ? "the " + o.split + " split" : o.image_folder,
                  class_list.empty() ? "" : " of " + fmt::to_string(fmt::join(class_list, ",")));
  BIRDPLANE_CHECK(available > 0, "{} holds no images", which);
  BIRDPLANE_CHECK(o.index >= 0 && o.index < available,
                  "--index {} is out of range: {} has {} images, so use 0 to {}", o.index, which, available,
                  available - 1);

  const auto& names = set.class_names();
  if (!is_grid) {
    const std::string label = names.at(static_cast<size_t>(set.labels()[o.index].item<int64_t>()));
    data::write_png(o.out, data::upscale_nearest(set.images()[o.index], scale));
    std::cout << fmt::format("wrote {} ({})\n", o.out, label);
    return;
  }

  const int64_t count = static_cast<int64_t>(shape.rows) * shape.cols;
  BIRDPLANE_CHECK(o.index + count <= available,
                  "--grid {} from --index {} needs images {} to {}, but {} has {} images (0 to {}); "
                  "lower --index or use a smaller --grid",
                  o.grid, o.index, o.index, o.index + count - 1, which, available, available - 1);
  const at::Tensor images = set.images().slice(0, o.index, o.index + count);
  const at::Tensor labels = set.labels().slice(0, o.index, o.index + count);
  std::vector<std::string> captions;
  captions.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) captions.push_back(names.at(static_cast<size_t>(labels[i].item<int64_t>())));
  data::write_png(o.out, data::make_grid(images, shape.rows, shape.cols, scale, captions, /*padding=*/4));
  std::cout << fmt::format("wrote {} ({}x{} images from index {})\n", o.out, shape.rows, shape.cols, o.index);
}

}  // namespace

void setup_show(CLI::App& app) {
  auto o = std::make_shared<ShowOptions>();
  auto* cmd = app.add_subcommand("show", "Write a CIFAR-10 (or image folder) image, or a captioned grid of them, to a PNG "
                                         "(the book's plt.imshow)");
  add_data_dir(*cmd, o->data_dir);
  cmd->add_option("--split", o->split, "train or test (CIFAR-10)")->capture_default_str();
  cmd->add_option("--image-folder", o->image_folder,
                  "Show images of an image folder (one subfolder per class, in ImageFolder's order) instead "
                  "of CIFAR-10");
  add_folder_flags(*cmd, o->folder, /*with_size=*/true);
  cmd->add_option("--classes", o->classes,
                  "Comma-separated class names, e.g. airplane,bird; --index then counts within them "
                  "(default: all ten)");
  cmd->add_option("--index", o->index, "Index of the image (the first one for --grid)")->capture_default_str();
  cmd->add_option("--grid", o->grid, "ROWSxCOLS, e.g. 8x8: images index..index+ROWS*COLS-1 with class names");
  cmd->add_option("--scale", o->scale, "Enlarge each pixel to KxK (1 to 32; default 8, or 3 with --grid)")
      ->check(CLI::Range(1, 32));
  cmd->add_option("--out", o->out, "Output file, must end in .png")->required();
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_show(*o); });
}

}  // namespace birdplane::cli
