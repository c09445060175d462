// birdplane serve, driven with curl as a client would: the page, /healthz, /predict (raw body and form
// upload, the same probabilities as `predict`), hostile requests answered with a 4xx JSON error while the
// server keeps serving, /metrics counting them, and SIGTERM ending it with exit code 0.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"

using namespace birdplane;
using fixtures::contains;
using fixtures::run_shell;
using fixtures::TempDir;
namespace fs = std::filesystem;

TEST(CliServe, AnswersPredictionsAndErrorsAndStopsCleanly) {
  if (run_shell("command -v curl").exit_code != 0) GTEST_SKIP() << "curl is not installed";
  TempDir t;
  train::ModelConfig config;
  config.spec.name = "net";
  config.spec.num_classes = 2;
  config.spec.image_shape = {3, 32, 32};
  config.loss = nn::LossKind::kCrossEntropy;
  config.classes = {"airplane", "bird"};
  config.mean = {0.5, 0.5, 0.5};
  config.std = {0.25, 0.25, 0.25};
  torch::manual_seed(2);
  train::save_checkpoint(t / "model.pt", config, *nn::make_model(config.spec));
  data::write_png(t / "a.png", torch::randint(0, 256, {3, 40, 36}, torch::kByte));
  std::ofstream(t / "junk.png") << "this is not a PNG file";
  { std::ofstream big(t / "big.bin"); big << std::string(300'000, 'x'); }
  // One script: start the server on a free port, make the requests, stop it with SIGTERM.
  const std::string script = fmt::format(R"SH(
set -u
cd {dir}
{bin} serve --checkpoint model.pt --port 0 --max-bytes 200000 --workers 2 > server.out 2> server.err &
pid=$!
for i in $(seq 1 100); do grep -q "serving" server.out 2>/dev/null && break; sleep 0.1; done
url=$(grep -o "http://[0-9.:]*/" server.out)
curl -s -o page.html -w "%{{http_code}}" "$url" > page.code
curl -s "${{url}}healthz" > healthz.json
curl -s -w "\n%{{http_code}}" --data-binary @a.png "${{url}}predict?top_k=1" > raw.out
curl -s -w "\n%{{http_code}}" -F file=@a.png "${{url}}predict" > form.out
curl -s -w "\n%{{http_code}}" --data-binary @junk.png "${{url}}predict" > junk.out
curl -s -w "\n%{{http_code}}" --data-binary @big.bin "${{url}}predict" > big.out
curl -s -w "\n%{{http_code}}" "${{url}}nothing" > missing.out
curl -s -w "\n%{{http_code}}" --data-binary @a.png "${{url}}predict" > after.out
curl -s "${{url}}metrics" > metrics.txt
kill -TERM $pid
wait $pid
echo $? > server.rc
)SH",
                                         fmt::arg("dir", t.path()), fmt::arg("bin", BIRDPLANE_BINARY));
  std::ofstream(t / "run.sh") << script;
  const auto r = run_shell("bash " + (t / "run.sh"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto server_out = fixtures::read_file(t / "server.out");
  ASSERT_TRUE(contains(server_out, "serving net (2 classes) on http://127.0.0.1:")) << server_out
                                                                                     << fixtures::read_file(t / "server.err");
  EXPECT_EQ(fixtures::read_file(t / "server.rc"), "0\n") << fixtures::read_file(t / "server.err");
  EXPECT_TRUE(contains(server_out, "stopped")) << server_out;
  EXPECT_EQ(fixtures::read_file(t / "page.code"), "200");
  const auto page = fixtures::read_file(t / "page.html");
  EXPECT_TRUE(contains(page, "<input id=\"file\" type=\"file\"")) << page;
  EXPECT_FALSE(contains(page, "http://") || contains(page, "https://")) << "the page loads nothing from the network";
  const auto health = nlohmann::json::parse(fixtures::read_file(t / "healthz.json"));
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["classes"], nlohmann::json({"airplane", "bird"}));
  auto split = [](const std::string& text) {  // body, then the status code on the last line
    const auto nl = text.rfind('\n');
    return std::make_pair(text.substr(0, nl), std::stoi(text.substr(nl + 1)));
  };
  // The raw body and the form upload give what `birdplane predict` gives for the same file.
  const auto p = fixtures::run_birdplane(fmt::format("predict --checkpoint {} --json {}", t / "model.pt", t / "a.png"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const auto want = nlohmann::json::parse(p.out)[0]["probabilities"];
  for (const char* name : {"raw.out", "form.out", "after.out"}) {
    const auto [body, code] = split(fixtures::read_file(t / name));
    ASSERT_EQ(code, 200) << name << ": " << body;
    const auto j = nlohmann::json::parse(body);
    for (const char* c : {"airplane", "bird"}) EXPECT_NEAR(j["probabilities"][c].get<double>(), want[c].get<double>(), 1e-12) << name;
    EXPECT_EQ(j["top"].size(), std::string(name) == "raw.out" ? 1u : 2u) << name;
    EXPECT_GE(j["seconds"].get<double>(), 0.0);
  }
  // Hostile requests: a 4xx with a JSON error each, and the server went on (after.out above).
  for (const auto& [name, status, words] : {std::tuple<const char*, int, const char*>{"junk.out", 422, "uploaded image"},
                                            {"big.out", 413, "200000 bytes"},
                                            {"missing.out", 404, "no such page"}}) {
    const auto [body, code] = split(fixtures::read_file(t / name));
    EXPECT_EQ(code, status) << name << ": " << body;
    const auto j = nlohmann::json::parse(body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << name << ": " << body;
    EXPECT_TRUE(contains(j.value("error", ""), words)) << name << ": " << body;
  }
  const auto metrics = fixtures::read_file(t / "metrics.txt");
  EXPECT_TRUE(contains(metrics, "birdplane_requests_total{path=\"/predict\",code=\"200\"} 3")) << metrics;
  EXPECT_TRUE(contains(metrics, "birdplane_requests_total{path=\"/predict\",code=\"422\"} 1")) << metrics;
  EXPECT_TRUE(contains(metrics, "birdplane_request_duration_seconds_count{path=\"/predict\"}")) << metrics;
  EXPECT_TRUE(contains(metrics, "# TYPE birdplane_request_duration_seconds histogram")) << metrics;
}

TEST(CliServe, BadFlagsExitTwo) {
  const auto r = fixtures::run_birdplane("serve --checkpoint /nonexistent/model.pt --port 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "/nonexistent/model.pt")) << r.err;
  const auto w = fixtures::run_birdplane("serve --checkpoint x.pt --workers 0");
  EXPECT_EQ(w.exit_code, 2);
  EXPECT_TRUE(contains(w.err, "--workers 0")) << w.err;
}

// As a person and as many clients use it: the page in headless Chromium (pick an image, read the top
// class from the bars), then a bounded load test on loopback (8 clients, 2,000 requests, none failing,
// the server's memory not growing past a bound), and a second server on the same port refused.
TEST(CliServe, ThePageInChromiumAndALoadTest) {
  const std::string deps = std::string(BIRDPLANE_SOURCE_DIR) + "/.deps/browser/node_modules/puppeteer-core";
  ASSERT_TRUE(fs::exists(deps) && run_shell("command -v chromium && command -v node").exit_code == 0)
      << "chromium, node or puppeteer-core is missing: scripts/setup installs them";
  TempDir t;
  train::ModelConfig config;
  config.spec.name = "net";
  config.spec.num_classes = 3;
  config.spec.image_shape = {3, 32, 32};
  config.loss = nn::LossKind::kCrossEntropy;
  config.classes = {"airplane", "bird", "cat"};
  config.mean = {0.5, 0.5, 0.5};
  config.std = {0.25, 0.25, 0.25};
  torch::manual_seed(4);
  train::save_checkpoint(t / "model.pt", config, *nn::make_model(config.spec));
  data::write_png(t / "a.png", torch::randint(0, 256, {3, 64, 64}, torch::kByte));
  const std::string script = fmt::format(R"SH(
set -u
cd {dir}
# Under AddressSanitizer (scripts/test --sanitize) freed memory waits in a quarantine of 256 MiB by
# default, which would read as growth; a small one keeps the memory bound meaningful there too.
ASAN_OPTIONS="${{ASAN_OPTIONS:-}}:quarantine_size_mb=1" {bin} serve --checkpoint model.pt --port 0 --workers 4 > server.out 2> server.err &
pid=$!
for i in $(seq 1 100); do grep -q "serving" server.out 2>/dev/null && break; sleep 0.1; done
url=$(grep -o "http://[0-9.:]*/" server.out)
node {src}/tools/serve_browser.js "$url" a.png page.png > browser.json 2> browser.err
node {src}/tools/serve_load.js "$url" a.png 8 200 > warmup.json
grep VmRSS /proc/$pid/status | tr -s ' ' | cut -d' ' -f2 > rss_before
node {src}/tools/serve_load.js "$url" a.png 8 2000 > load.json
grep VmRSS /proc/$pid/status | tr -s ' ' | cut -d' ' -f2 > rss_after
port=$(echo "$url" | grep -o ":[0-9]*/" | tr -d :/)
timeout 20 {bin} serve --checkpoint model.pt --port $port > second.out 2> second.err
echo $? > second.rc
kill -TERM $pid
wait $pid
echo $? > server.rc
)SH",
                                         fmt::arg("dir", t.path()), fmt::arg("bin", BIRDPLANE_BINARY),
                                         fmt::arg("src", BIRDPLANE_SOURCE_DIR));
  std::ofstream(t / "run.sh") << script;
  const auto r = run_shell("bash " + (t / "run.sh"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fixtures::read_file(t / "server.rc"), "0\n") << fixtures::read_file(t / "server.err");

  // The page shows what `birdplane predict` says, with no console error and no request off the server.
  const auto p = fixtures::run_birdplane(fmt::format("predict --checkpoint {} --json {}", t / "model.pt", t / "a.png"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const auto want = nlohmann::json::parse(p.out)[0];
  const auto browser = nlohmann::json::parse(fixtures::read_file(t / "browser.json"), nullptr, false);
  ASSERT_FALSE(browser.is_discarded()) << fixtures::read_file(t / "browser.json") << fixtures::read_file(t / "browser.err");
  EXPECT_EQ(browser["model"], "net");
  EXPECT_EQ(browser["error"], "");
  EXPECT_EQ(browser["top"], want["top"][0]["class"]) << browser.dump();
  ASSERT_EQ(browser["rows"].size(), 3u) << browser.dump();
  EXPECT_EQ(browser["rows"][0][1], fmt::format("{:.1f}%", 100 * want["top"][0]["probability"].get<double>()));
  EXPECT_EQ(browser["console_errors"], nlohmann::json::array()) << browser.dump();
  EXPECT_EQ(browser["foreign_requests"], nlohmann::json::array()) << browser.dump();
  EXPECT_GT(fs::file_size(t / "page.png"), 1000u);

  // 2,000 requests from 8 clients: every one answered with a class; memory bounded.
  const auto load = nlohmann::json::parse(fixtures::read_file(t / "load.json"));
  EXPECT_EQ(load["requests"], 2000);
  EXPECT_EQ(load["errors"], 0) << load.dump();
  const int64_t before = std::stoll(fixtures::read_file(t / "rss_before"));
  const int64_t after = std::stoll(fixtures::read_file(t / "rss_after"));
  EXPECT_LT(after - before, 32 * 1024) << "the server's memory grew from " << before << " to " << after << " KiB";
  std::cout << fmt::format("load: {} requests, 8 clients: p50 {:.2f} ms, p99 {:.2f} ms, {:.0f} requests/s; RSS {} -> {} KiB\n",
                           load["requests"].get<int>(), load["p50_ms"].get<double>(), load["p99_ms"].get<double>(),
                           load["per_second"].get<double>(), before, after);

  // A second server on the port in use: one message, exit 2.
  EXPECT_EQ(fixtures::read_file(t / "second.rc"), "2\n");
  EXPECT_TRUE(contains(fixtures::read_file(t / "second.err"), "cannot listen there")) << fixtures::read_file(t / "second.err");
}
