// birdplane report: a run folder as one HTML page; birdplane compare: several runs on one page
// (report/run_report.h).
#include <iostream>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/report/run_report.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct ReportOptions {
  std::string run;
  std::string data_dir;
  std::string out;
  bool no_eval = false;
  int64_t hardest = 32;
};

void run_report(const ReportOptions& o) {
  report::RunReportOptions options;
  options.evaluate = !o.no_eval;
  options.data_dir = o.data_dir;
  options.out = o.out;
  options.hardest = o.hardest;
  BIRDPLANE_CHECK(o.hardest >= 0 && o.hardest <= 1000, "--hardest {}: expected 0 to 1000", o.hardest);
  const auto r = report::write_run_report(o.run, options);
  std::cout << fmt::format("wrote {} ({} epochs{})\n", r.path, r.epochs,
                           r.evaluated ? fmt::format(", validation accuracy {:.4f}", r.val_accuracy)
                                       : fmt::format("; no validation sections: {}", r.note));
}

}  // namespace

void setup_report(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = app.add_subcommand("report", "Write a run folder's report.html: settings, curves, confusion matrix, "
                                           "per-class precision/recall/F1, the validation images with the highest "
                                           "loss, training images after augmentation, time per epoch");
  cmd->add_option("run", o->run, "The run folder, runs/<name>")->required();
  cmd->add_option("--data-dir", o->data_dir, "Where CIFAR-10 is now, when it moved since the run (never downloads)");
  cmd->add_option("--out", o->out, "Write the page here instead of <run>/report.html");
  cmd->add_option("--hardest", o->hardest, "How many highest-loss validation images to show")->capture_default_str();
  cmd->add_flag("--no-eval", o->no_eval, "Curves and settings only: do not load the model or the data");
  cmd->callback([o] { run_report(*o); });

  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>("compare.html");
  auto* compare = app.add_subcommand("compare", "One HTML page comparing runs: their curves on shared axes, the "
                                                "settings in which they differ, their final figures");
  compare->add_option("runs", *runs, "Run folders, runs/<name> ...")->required();
  compare->add_option("--out", *out, "The page to write")->capture_default_str();
  compare->callback([runs, out] {
    report::write_comparison(*runs, *out);
    std::cout << fmt::format("wrote {} ({} runs)\n", *out, runs->size());
  });
}

}  // namespace birdplane::cli
