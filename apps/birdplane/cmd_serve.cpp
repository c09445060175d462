// birdplane serve: a saved model behind HTTP (cpp-httplib). POST /predict classifies the image in the
// body (or in a form's "file" field), GET /healthz says the model is loaded, GET /metrics gives request
// counts and latency histograms in Prometheus' text format, GET / is a page to try it from a browser.
// The HTTP glue lives here; the classifying is the library's deploy::Predictor.
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
// httplib's listen backlog is 5 connections: in a burst of new clients, those beyond it wait for the
// kernel to retry their connection attempt, a second later.
#define CPPHTTPLIB_LISTEN_BACKLOG 128
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "birdplane/check.h"
#include "birdplane/deploy/predictor.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct ServeOptions {
  std::string checkpoint;
  std::string host = "127.0.0.1";
  int port = 8080;
  int64_t max_bytes = 20 << 20;
  int64_t max_pixels = 40'000'000;
  int workers = 4;
  double timeout = 30;
  int64_t top_k = 5;
};

// Prometheus counters and histograms, by path and status code.
class Metrics {
 public:
  void record(const std::string& path, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{path, status}];
    auto& h = latency_[path];
    for (size_t i = 0; i < kBuckets.size(); ++i)
      if (seconds <= kBuckets[i]) ++h.counts[i];
    ++h.count;
    h.sum += seconds;
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out = "# HELP birdplane_requests_total HTTP requests by path and status code.\n"
                      "# TYPE birdplane_requests_total counter\n";
    for (const auto& [key, n] : requests_)
      out += fmt::format("birdplane_requests_total{{path=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
    out += "# HELP birdplane_request_duration_seconds Time from request to response, by path.\n"
           "# TYPE birdplane_request_duration_seconds histogram\n";
    for (const auto& [path, h] : latency_) {
      for (size_t i = 0; i < kBuckets.size(); ++i)
        out += fmt::format("birdplane_request_duration_seconds_bucket{{path=\"{}\",le=\"{}\"}} {}\n", path, kBuckets[i],
                           h.counts[i]);
      out += fmt::format("birdplane_request_duration_seconds_bucket{{path=\"{}\",le=\"+Inf\"}} {}\n", path, h.count);
      out += fmt::format("birdplane_request_duration_seconds_sum{{path=\"{}\"}} {}\n", path, h.sum);
      out += fmt::format("birdplane_request_duration_seconds_count{{path=\"{}\"}} {}\n", path, h.count);
    }
    return out;
  }

 private:
  static constexpr std::array<double, 10> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};
  struct Histogram {
    std::array<int64_t, 10> counts{};
    int64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

// The page: pick or drop an image, see the top classes as bars. Everything inline, nothing from the network.
constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>birdplane</title><link rel="icon" href="data:,">
<style>
body { font-family: sans-serif; max-width: 40em; margin: 2em auto; color: #222; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 2em; text-align: center; cursor: pointer; }
#drop.over { background: #eef; }
img { max-width: 100%; max-height: 16em; display: block; margin: 1em auto; }
.row { display: flex; align-items: center; margin: 0.3em 0; }
.name { width: 10em; }
.bar { background: #3465a4; height: 1.2em; }
.p { margin-left: 0.5em; font-variant-numeric: tabular-nums; }
#error { color: #a40000; }
</style></head><body>
<h1>birdplane</h1>
<p>Model <b id="model"></b>. Drop an image here or pick one; it is classified on this server.</p>
<div id="drop">Drop an image, or click to choose a file<input id="file" type="file" accept="image/*" hidden></div>
<img id="preview" alt="">
<div id="result"></div><p id="error"></p>
<script>
const drop = document.getElementById('drop'), file = document.getElementById('file');
fetch('healthz').then(r => r.json()).then(j => { document.getElementById('model').textContent = j.model; });
drop.onclick = () => file.click();
drop.ondragover = e => { e.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = e => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); };
file.onchange = () => { if (file.files[0]) send(file.files[0]); };
function send(f) {
  document.getElementById('preview').src = URL.createObjectURL(f);
  document.getElementById('error').textContent = '';
  const result = document.getElementById('result');
  result.textContent = 'classifying...';
  fetch('predict', { method: 'POST', body: f }).then(r => r.json()).then(j => {
    result.textContent = '';
    if (j.error) { document.getElementById('error').textContent = j.error; return; }
    for (const c of j.top) {
      const row = document.createElement('div'); row.className = 'row';
      const name = document.createElement('span'); name.className = 'name'; name.textContent = c.class;
      const bar = document.createElement('span'); bar.className = 'bar'; bar.style.width = (c.probability * 20) + 'em';
      const p = document.createElement('span'); p.className = 'p'; p.textContent = (100 * c.probability).toFixed(1) + '%';
      row.append(name, bar, p); result.append(row);
    }
  }).catch(e => { result.textContent = ''; document.getElementById('error').textContent = String(e); });
}
</script></body></html>
)HTML";

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

void run_serve(const ServeOptions& o) {
  BIRDPLANE_CHECK(o.port >= 0 && o.port <= 65535, "--port {}: expected 0 to 65535 (0: any free port)", o.port);
  BIRDPLANE_CHECK(o.workers >= 1 && o.workers <= 256, "--workers {}: expected 1 to 256", o.workers);
  BIRDPLANE_CHECK(o.max_bytes >= 1, "--max-bytes {}: expected 1 or more", o.max_bytes);
  BIRDPLANE_CHECK(o.max_pixels >= 1, "--max-pixels {}: expected 1 or more", o.max_pixels);
  BIRDPLANE_CHECK(o.timeout > 0 && o.timeout <= 3600, "--timeout {}: expected above 0, at most 3600 seconds", o.timeout);
  BIRDPLANE_CHECK(o.top_k >= 1, "--top-k {}: expected 1 or more", o.top_k);
  deploy::PredictorOptions po;
  po.max_pixels = o.max_pixels;
  po.max_bytes = o.max_bytes;
  const deploy::Predictor predictor(o.checkpoint, po);
  Metrics metrics;

  httplib::Server server;
  const int workers = o.workers;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(static_cast<size_t>(workers)); };
  server.set_payload_max_length(static_cast<size_t>(o.max_bytes));
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, with which a second server binds a port
  // in use without an error and the kernel splits the connections between the two.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout * 1000));
  server.set_read_timeout(timeout);
  server.set_write_timeout(timeout);
  auto json_error = [](httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
  };
  // Each request is handled on one worker thread from routing to logging: its arrival time is kept there.
  // (A request refused before routing, as one too large, is logged with no duration.)
  static thread_local std::optional<std::chrono::steady_clock::time_point> arrived;
  server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    arrived = std::chrono::steady_clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_logger([&metrics](const httplib::Request& req, const httplib::Response& res) {
    const double seconds =
        arrived ? std::chrono::duration<double>(std::chrono::steady_clock::now() - *arrived).count() : 0.0;
    arrived.reset();
    const bool known = req.path == "/" || req.path == "/predict" || req.path == "/healthz" || req.path == "/metrics";
    metrics.record(known ? req.path : "other", res.status, seconds);
  });
  server.set_error_handler([&](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      const std::string what = res.status == 413   ? fmt::format("the request is larger than {} bytes", o.max_bytes)
                               : res.status == 404 ? "no such page; try POST /predict, GET /healthz, GET /metrics, GET /"
                                                   : fmt::format("the request failed (HTTP {})", res.status);
      json_error(res, res.status, what);
    }
  });
  server.set_exception_handler([&](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      json_error(res, 500, std::string("internal error: ") + e.what());
    } catch (...) {
      json_error(res, 500, "internal error");
    }
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kPage, "text/html; charset=utf-8"); });
  server.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(nlohmann::json{{"status", "ok"},
                                   {"model", predictor.config().spec.name},
                                   {"classes", predictor.classes()},
                                   {"image_shape", predictor.config().spec.image_shape}}
                        .dump(),
                    "application/json");
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.text(), "text/plain; version=0.0.4");
  });
  server.Post("/predict", [&](const httplib::Request& req, httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    // The image: the body itself, or a form's "file" field.
    const std::string* body = &req.body;
    std::string field;
    if (req.is_multipart_form_data()) {
      if (!req.has_file("file")) return json_error(res, 400, "the form has no \"file\" field");
      field = req.get_file_value("file").content;
      body = &field;
    }
    if (body->empty()) return json_error(res, 400, "the request has no image in its body");
    int64_t top_k = o.top_k;
    if (req.has_param("top_k")) {
      try {
        top_k = std::stoll(req.get_param_value("top_k"));
      } catch (const std::logic_error&) {
        top_k = 0;
      }
      if (top_k < 1) return json_error(res, 400, "top_k must be a whole number, 1 or more");
    }
    deploy::Prediction p;
    try {
      p = predictor.classify_bytes(reinterpret_cast<const uint8_t*>(body->data()), body->size(), top_k,
                                   "the uploaded image");
    } catch (const Error& e) {
      // Not an image, damaged, or too many pixels: the client's fault, and the server goes on.
      return json_error(res, std::string(e.what()).find("pixels") != std::string::npos ? 413 : 422, e.what());
    }
    nlohmann::json j;
    j["class"] = p.top.front().first;
    j["top"] = nlohmann::json::array();
    for (const auto& [name, prob] : p.top) j["top"].push_back({{"class", name}, {"probability", prob}});
    for (size_t c = 0; c < predictor.classes().size(); ++c) j["probabilities"][predictor.classes()[c]] = p.probabilities[c];
    j["note"] = p.note;
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    res.set_content(j.dump(), "application/json");
  });

  int port = o.port;
  if (port == 0) {
    port = server.bind_to_any_port(o.host);
    BIRDPLANE_CHECK(port > 0, "--host {}: cannot listen there", o.host);
  } else {
    BIRDPLANE_CHECK(server.bind_to_port(o.host, port), "--host {} --port {}: cannot listen there (in use?)", o.host,
                    port);
  }
  std::cout << fmt::format("serving {} ({} classes) on http://{}:{}/ with {} workers; Ctrl-C stops\n",
                           predictor.config().spec.name, predictor.classes().size(), o.host, port, o.workers)
            << std::flush;
  // Ctrl-C or SIGTERM: stop taking connections, let the requests in flight finish, exit 0.
  g_signal = 0;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server.stop();
  });
  server.listen_after_bind();
  done = true;
  watcher.join();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (g_signal != 0) std::cout << "stopped; the requests in flight were answered\n" << std::flush;
}

}  // namespace

void setup_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve",
                                 "Serve a saved model over HTTP: POST /predict (an image in the body: JSON with the "
                                 "classes and probabilities), GET /healthz, GET /metrics (Prometheus), GET / (a page "
                                 "to try it)");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt")->required();
  cmd->add_option("--host", o->host, "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every network)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free one, printed)")->capture_default_str();
  cmd->add_option("--max-bytes", o->max_bytes, "Refuse requests larger than this (413)")->capture_default_str();
  cmd->add_option("--max-pixels", o->max_pixels, "Refuse images declaring more pixels than this (413)")
      ->capture_default_str();
  cmd->add_option("--workers", o->workers, "Requests handled at once (others wait)")->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Seconds a client may take to send a request or read the answer")
      ->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Classes in each answer's \"top\" (a request may ask ?top_k=N)")
      ->capture_default_str();
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace birdplane::cli
