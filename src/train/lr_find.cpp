#include "birdplane/train/lr_find.h"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/report/plot.h"
#include "common/files.h"

namespace birdplane::train {

void write_lr_find(const std::string& folder, const LrFindResult& r) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  BIRDPLANE_CHECK(!ec, "could not create the folder {} ({})", folder, ec.message());
  std::string csv = "step,lr,loss,smoothed_loss\n";
  for (size_t i = 0; i < r.lrs.size(); ++i)
    csv += fmt::format("{},{:.9g},{:.6f},{:.6f}\n", i + 1, r.lrs[i], r.losses[i], r.smoothed[i]);
  write_file_atomically((std::filesystem::path(folder) / "lr_find.csv").string(), csv);
  // log10 of the rate on the x axis (the plot's axes are linear).
  report::LinePlot plot;
  plot.title = fmt::format("Learning-rate finder: suggested {:.3g}", r.suggestion);
  plot.x_label = "log10(learning rate)";
  plot.y_label = "training loss (smoothed)";
  report::Series loss{"smoothed loss", {}, {}, false};
  for (size_t i = 0; i < r.lrs.size(); ++i) {
    if (!std::isfinite(r.smoothed[i])) continue;
    loss.x.push_back(std::log10(r.lrs[i]));
    loss.y.push_back(r.smoothed[i]);
  }
  plot.series.push_back(loss);
  if (!loss.y.empty() && r.suggestion > 0) {
    double lo = loss.y.front(), hi = loss.y.front();
    for (double v : loss.y) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const double x = std::log10(r.suggestion);
    plot.series.push_back({fmt::format("suggestion {:.3g}", r.suggestion), {x, x}, {lo, hi}, false});
  }
  plot.write_svg((std::filesystem::path(folder) / "lr_find.svg").string());
}

}  // namespace birdplane::train
