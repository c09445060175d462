// birdplane report as a person uses it: train writes report.html at the end, `report` writes it again,
// headless Chromium opens it from a file:// address with no console error and no request anywhere, and
// the numbers it shows are metrics.csv's and `eval --json`'s. Bad run folders are one message and exit
// 2, and report never changes anything in the folder but report.html.
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "birdplane/train/metrics_csv.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {

// Every file of a folder and its bytes, but report.html.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != "report.html") files[e.path().filename().string()] = read_file(e.path().string());
  return files;
}

}  // namespace

TEST(CliReport, TrainWritesItAndChromiumShowsMetricsAndEvalNumbers) {
  const std::string deps = std::string(BIRDPLANE_SOURCE_DIR) + "/.deps/browser/node_modules/puppeteer-core";
  ASSERT_TRUE(fs::exists(deps) && run_shell("command -v chromium && command -v node").exit_code == 0)
      << "chromium, node or puppeteer-core is missing: scripts/setup installs them";
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string data = " --data-dir " + t.path() + " --no-download";
  const std::string common = data + " --threads 1 --classes airplane,bird,cat";
  auto r = run_birdplane("train --model net --epochs 3 --augment flip --schedule cosine --runs-dir " + (t / "runs") +
                         " --name a" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = t / "runs/a";
  EXPECT_TRUE(contains(r.out, "report: " + run + "/report.html")) << r.out;
  ASSERT_TRUE(fs::exists(run + "/report.html"));

  const auto before = snapshot(run);
  auto again = run_birdplane("report " + run);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(contains(again.out, "3 epochs, validation accuracy")) << again.out;
  EXPECT_EQ(snapshot(run), before) << "report changed a file of the run besides report.html";

  auto page = run_shell(fmt::format("node {}/tools/page_check.js file://{}/report.html {}/report.png",
                                    BIRDPLANE_SOURCE_DIR, run, t.path()));
  ASSERT_EQ(page.exit_code, 0) << page.err;
  const auto j = nlohmann::json::parse(page.out);
  EXPECT_EQ(j["console_errors"], nlohmann::json::array()) << page.out;
  EXPECT_EQ(j["foreign_requests"], nlohmann::json::array()) << page.out;
  EXPECT_EQ(j["broken"], 0);
  EXPECT_GE(j["images"].get<int>(), 2);  // the hardest images and the augmentation grid
  EXPECT_GT(fs::file_size(t / "report.png"), 10000u);

  // The per-epoch table shows metrics.csv's rows.
  const auto rows = birdplane::train::read_metrics(run + "/metrics.csv");
  const auto& epochs = j["tables"]["epochs"];
  ASSERT_EQ(epochs.size(), rows.size() + 1) << epochs.dump();  // a header row
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& cells = epochs[i + 1];
    EXPECT_EQ(cells[0], std::to_string(rows[i].epoch));
    EXPECT_NEAR(std::stod(cells[1].get<std::string>()), rows[i].train_loss, 1e-6);
    EXPECT_NEAR(std::stod(cells[2].get<std::string>()), rows[i].train_accuracy, 1e-6);
    EXPECT_NEAR(std::stod(cells[3].get<std::string>()), rows[i].val_loss, 1e-6);
    EXPECT_NEAR(std::stod(cells[4].get<std::string>()), rows[i].val_accuracy, 1e-6);
    EXPECT_NEAR(std::stod(cells[5].get<std::string>()), rows[i].lr, 1e-6 * rows[i].lr);
  }
  // The learning rate varies (cosine): its curve is there.
  EXPECT_TRUE(contains(read_file(run + "/report.html"), "Learning rate (last step of each epoch)"));

  // The confusion matrix and accuracy are eval's.
  auto e = run_birdplane("eval --json --checkpoint " + run + "/model.pt" + data);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto ev = nlohmann::json::parse(e.out);
  EXPECT_EQ(j["ids"]["val-accuracy"], fmt::format("{:.4f}", ev["accuracy"].get<double>()));
  const auto& confusion = j["tables"]["confusion"];
  ASSERT_EQ(confusion.size(), 4u) << confusion.dump();
  for (int truth = 0; truth < 3; ++truth)
    for (int predicted = 0; predicted < 3; ++predicted)
      EXPECT_EQ(confusion[truth + 1][predicted + 1], std::to_string(ev["confusion_matrix"][truth][predicted].get<int>()));
  const auto& per_class = j["tables"]["per-class"];
  ASSERT_EQ(per_class.size(), 4u);
  EXPECT_EQ(per_class[1][0], "airplane");
  EXPECT_TRUE(contains(read_file(run + "/report.html"), "RandomHorizontalFlip") ||
              contains(read_file(run + "/report.html"), "flip"));

  // A run in progress: no results.json or model.pt yet; the checkpoint is evaluated.
  fs::remove(run + "/results.json");
  fs::remove(run + "/model.pt");
  auto progress = run_birdplane("report " + run);
  ASSERT_EQ(progress.exit_code, 0) << progress.err;
  EXPECT_TRUE(contains(read_file(run + "/report.html"), "in progress")) << progress.out;
  EXPECT_TRUE(contains(progress.out, "validation accuracy")) << progress.out;

  // --no-report: no page.
  auto quiet = run_birdplane("train --model net --epochs 1 --no-report --runs-dir " + (t / "runs") + " --name q" + common);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_FALSE(fs::exists(t / "runs/q/report.html"));
  EXPECT_FALSE(contains(quiet.out, "report:")) << quiet.out;
}

TEST(CliReport, BadRunFoldersAreOneMessageAndChangeNothing) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird";
  ASSERT_EQ(run_birdplane("train --model book-small --epochs 1 --no-report --runs-dir " + (t / "runs") + " --name a" +
                          common)
                .exit_code,
            0);
  const std::string run = t / "runs/a";

  auto missing = run_birdplane("report " + (t / "nowhere"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.err, "nowhere: no such folder")) << missing.err;
  auto not_run = run_birdplane("report " + t.path());
  EXPECT_EQ(not_run.exit_code, 2);
  EXPECT_TRUE(contains(not_run.err, "not a run folder")) << not_run.err;

  // A damaged metrics.csv, then a damaged model.pt: named, exit 2, the folder as it was, no page.
  const std::string metrics = read_file(run + "/metrics.csv");
  {
    std::ofstream f(run + "/metrics.csv");
    f << "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second,lr\n1,0.5,zero,,,1,1,0.01\n";
  }
  auto before = snapshot(run);
  auto bad = run_birdplane("report " + run);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "metrics.csv")) << bad.err;
  EXPECT_EQ(snapshot(run), before);
  EXPECT_FALSE(fs::exists(run + "/report.html"));
  {
    std::ofstream f(run + "/metrics.csv");
    f << "this is not a metrics file\n";
  }
  auto foreign = run_birdplane("report " + run);
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_TRUE(contains(foreign.err, "metrics.csv")) << foreign.err;
  fs::remove(run + "/metrics.csv");
  auto gone = run_birdplane("report " + run);
  EXPECT_EQ(gone.exit_code, 2);
  EXPECT_TRUE(contains(gone.err, "metrics.csv: missing")) << gone.err;
  {
    std::ofstream f(run + "/metrics.csv");
    f << metrics;
  }
  {
    std::ofstream f(run + "/model.pt", std::ios::binary | std::ios::trunc);
    f << "PK\x03\x04 not really a zip";
  }
  before = snapshot(run);
  auto model = run_birdplane("report " + run);
  EXPECT_EQ(model.exit_code, 2);
  EXPECT_TRUE(contains(model.err, "model.pt")) << model.err;
  EXPECT_EQ(snapshot(run), before);
  EXPECT_FALSE(fs::exists(run + "/report.html"));
  // --no-eval reads neither model nor data.
  auto curves = run_birdplane("report --no-eval " + run);
  EXPECT_EQ(curves.exit_code, 0) << curves.err;
  EXPECT_TRUE(fs::exists(run + "/report.html"));
}

TEST(CliReport, CompareShowsTheRunsAndTheirDifferences) {
  const std::string deps = std::string(BIRDPLANE_SOURCE_DIR) + "/.deps/browser/node_modules/puppeteer-core";
  ASSERT_TRUE(fs::exists(deps)) << "puppeteer-core is missing: scripts/setup installs it";
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird --no-report";
  for (const char* lr : {"0.01", "0.05"})
    ASSERT_EQ(run_birdplane(fmt::format("train --model net --epochs 2 --lr {} --runs-dir {} --name lr{}{}", lr,
                                        t / "runs", lr, common))
                  .exit_code,
              0);
  const auto before = snapshot(t / "runs/lr0.01");
  auto c = run_birdplane("compare " + (t / "runs/lr0.01") + " " + (t / "runs/lr0.05") + " --out " + (t / "c.html"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(snapshot(t / "runs/lr0.01"), before);
  auto page = run_shell(fmt::format("node {}/tools/page_check.js file://{} {}", BIRDPLANE_SOURCE_DIR, t / "c.html",
                                    t / "c.png"));
  ASSERT_EQ(page.exit_code, 0) << page.err;
  const auto j = nlohmann::json::parse(page.out);
  EXPECT_EQ(j["console_errors"], nlohmann::json::array()) << page.out;
  EXPECT_EQ(j["foreign_requests"], nlohmann::json::array()) << page.out;
  // The settings that differ: the learning rate, and nothing but what follows from it.
  const auto& diff = j["tables"]["differences"];
  ASSERT_EQ(diff.size(), 2u) << diff.dump();
  EXPECT_EQ(diff[1][0], "training.optimizer.lr");
  EXPECT_EQ(diff[1][1], "0.01");
  EXPECT_EQ(diff[1][2], "0.05");
  // Final figures are each run's last metrics.csv row.
  const auto& final_rows = j["tables"]["final-figures"];
  ASSERT_EQ(final_rows.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const auto rows = birdplane::train::read_metrics(t / (i == 0 ? "runs/lr0.01" : "runs/lr0.05") + "/metrics.csv");
    EXPECT_NEAR(std::stod(final_rows[i + 1][4].get<std::string>()), rows.back().val_accuracy, 1e-6);
  }
  auto bad = run_birdplane("compare " + (t / "runs/lr0.01") + " " + t.path() + " --out " + (t / "c.html"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err, "not a run folder")) << bad.err;
}

TEST(CliReport, AnExperimentsPageShowsItsTables) {
  const std::string deps = std::string(BIRDPLANE_SOURCE_DIR) + "/.deps/browser/node_modules/puppeteer-core";
  ASSERT_TRUE(fs::exists(deps)) << "puppeteer-core is missing: scripts/setup installs it";
  TempDir t;
  auto r = run_birdplane("experiment softmax --out " + (t / "s"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "index.html")) << r.out;
  auto page = run_shell(fmt::format("node {}/tools/page_check.js file://{} {}", BIRDPLANE_SOURCE_DIR, t / "s/index.html",
                                    t / "s.png"));
  ASSERT_EQ(page.exit_code, 0) << page.err;
  const auto j = nlohmann::json::parse(page.out);
  EXPECT_EQ(j["console_errors"], nlohmann::json::array()) << page.out;
  EXPECT_EQ(j["foreign_requests"], nlohmann::json::array()) << page.out;
  // The page's first table is table.json's first table.
  const auto table = nlohmann::json::parse(read_file(t / "s/table.json"))["tables"][0];
  const auto& shown = j["tables"]["table-0"];
  ASSERT_EQ(shown.size(), table["rows"].size() + 1) << shown.dump();
  for (size_t c = 0; c < table["columns"].size(); ++c) EXPECT_EQ(shown[0][c], table["columns"][c]);
  for (size_t i = 0; i < table["rows"].size(); ++i) {
    for (size_t c = 0; c < table["columns"].size(); ++c) {
      const auto& value = table["rows"][i][table["columns"][c].get<std::string>()];
      const std::string text = shown[i + 1][c].get<std::string>();
      if (value.is_number_float()) {
        EXPECT_NEAR(std::stod(text), value.get<double>(), 1e-3 * std::max(1.0, std::abs(value.get<double>())));
      } else if (value.is_string()) {
        EXPECT_EQ(text, value.get<std::string>());
      }
    }
  }
}

// The progress line within an epoch: on a terminal (a pseudo-terminal from `script`), steps, images per
// second and the time left for the epoch and the run, also in a resumed run; in a log (not a terminal)
// only one plain line per epoch.
TEST(CliProgress, ATerminalGetsTheLineALogOneLinePerEpoch) {
  if (run_shell("command -v script").exit_code != 0) GTEST_SKIP() << "script (util-linux) is not installed";
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --no-report --batch-size 8";
  auto tty = run_shell(fmt::format("script -qec \"{} train --model book-small --epochs 2 --runs-dir {} --name a{}\" /dev/null",
                                   BIRDPLANE_BINARY, t / "runs", common));
  ASSERT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_TRUE(contains(tty.out, "\repoch 1/2 [")) << tty.out;
  EXPECT_TRUE(contains(tty.out, "step 13/13")) << tty.out;  // 100 images in batches of 8
  EXPECT_TRUE(contains(tty.out, "left: epoch 0:00, run ")) << tty.out;
  auto resumed = run_shell(fmt::format("script -qec \"{} train --resume {} --epochs 3{}\" /dev/null", BIRDPLANE_BINARY,
                                       t / "runs/a", common));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "\repoch 3/3 [")) << resumed.out;
  EXPECT_FALSE(contains(resumed.out, "\repoch 1/3 [")) << resumed.out;
  auto log = run_birdplane("train --model book-small --epochs 2 --runs-dir " + (t / "runs") + " --name b" + common);
  ASSERT_EQ(log.exit_code, 0) << log.err;
  EXPECT_FALSE(contains(log.out, "\r")) << log.out;
  EXPECT_FALSE(contains(log.out, "left:")) << log.out;
  EXPECT_TRUE(contains(log.out, "epoch 1/2  loss")) << log.out;
  EXPECT_TRUE(contains(log.out, "epoch 2/2  loss")) << log.out;
}
