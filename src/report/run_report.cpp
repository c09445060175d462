// report.html of a run folder (report/run_report.h). The page is built as text: tables, inline SVG from
// report/plot.h, PNG images as data: addresses. No script, no font or style sheet from elsewhere.
#include "birdplane/report/run_report.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/image_io.h"
#include "birdplane/data/training_data.h"
#include "birdplane/report/plot.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/evaluate.h"
#include "birdplane/train/metrics_csv.h"
#include "birdplane/train/run_spec.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/spec.h"
#include "common/files.h"
#include "data/png_encode.h"

namespace birdplane::report {
namespace {

namespace fs = std::filesystem;

std::string base64(const std::string& bytes) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += kDigits[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kDigits[(v >> 18) & 63];
    out += kDigits[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string png_img(const at::Tensor& image_u8, const std::string& alt, int scale) {
  const auto big = scale > 1 ? data::upscale_nearest(image_u8, scale) : image_u8;
  return fmt::format("<img alt=\"{}\" src=\"data:image/png;base64,{}\">", html_escape(alt),
                     base64(data::encode_png(big, alt)));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BIRDPLANE_CHECK(static_cast<bool>(in), "cannot read {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A number as metrics.csv writes it, or an empty cell for one not measured.
std::string cell(double v, int decimals) { return v < 0 ? "" : fmt::format("{:.{}f}", v, decimals); }

std::string curves(const std::vector<train::EpochMetrics>& rows) {
  auto series = [&](const std::string& label, double train::EpochMetrics::*field) {
    Series s;
    s.label = label;
    s.markers = rows.size() <= 30;
    for (const auto& r : rows) {
      if (r.*field < 0) continue;
      s.x.push_back(static_cast<double>(r.epoch));
      s.y.push_back(r.*field);
    }
    return s;
  };
  std::string out;
  LinePlot loss{"Loss", "epoch", "loss", {}};
  loss.series.push_back(series("training", &train::EpochMetrics::train_loss));
  auto val_loss = series("validation", &train::EpochMetrics::val_loss);
  if (!val_loss.x.empty()) loss.series.push_back(val_loss);
  LinePlot accuracy{"Accuracy", "epoch", "accuracy", {}};
  accuracy.series.push_back(series("training", &train::EpochMetrics::train_accuracy));
  auto val_acc = series("validation", &train::EpochMetrics::val_accuracy);
  if (!val_acc.x.empty()) accuracy.series.push_back(val_acc);
  out += "<div class=\"plots\">" + loss.to_svg() + accuracy.to_svg();
  auto lr = series("learning rate", &train::EpochMetrics::lr);
  const bool varies = !lr.y.empty() && *std::min_element(lr.y.begin(), lr.y.end()) !=
                                           *std::max_element(lr.y.begin(), lr.y.end());
  if (varies) {
    LinePlot plot{"Learning rate (last step of each epoch)", "epoch", "learning rate", {lr}};
    out += plot.to_svg();
  }
  return out + "</div>\n";
}

std::string epoch_table(const std::vector<train::EpochMetrics>& rows) {
  std::string out =
      "<table class=\"numbers\" id=\"epochs\"><thead><tr><th>epoch</th><th>training loss</th><th>training "
      "accuracy</th><th>validation loss</th><th>validation accuracy</th><th>learning rate</th><th>seconds</th>"
      "<th>images/s</th></tr></thead><tbody>\n";
  for (const auto& r : rows)
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       r.epoch, cell(r.train_loss, 6), cell(r.train_accuracy, 6), cell(r.val_loss, 6),
                       cell(r.val_accuracy, 6), r.lr < 0 ? "" : fmt::format("{:.6g}", r.lr), cell(r.seconds, 4),
                       cell(r.images_per_second, 1));
  return out + "</tbody></table>\n";
}

// White to dark blue by share of the row; dark cells get white text (legible in grey too).
std::string confusion_table(const train::ConfusionMatrix& m, const std::vector<std::string>& classes) {
  const int64_t k = m.num_classes();
  std::string out = "<table class=\"confusion\" id=\"confusion\"><thead><tr><th>true \\ predicted</th>";
  for (const auto& c : classes) out += "<th>" + html_escape(c) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (int64_t t = 0; t < k; ++t) {
    int64_t row = 0;
    for (int64_t p = 0; p < k; ++p) row += m.at(t, p);
    out += "<tr><th>" + html_escape(classes[t]) + "</th>";
    for (int64_t p = 0; p < k; ++p) {
      const double share = row > 0 ? static_cast<double>(m.at(t, p)) / static_cast<double>(row) : 0.0;
      const int r = static_cast<int>(std::lround(255 - share * (255 - 8)));
      const int g = static_cast<int>(std::lround(255 - share * (255 - 48)));
      const int b = static_cast<int>(std::lround(255 - share * (255 - 107)));
      out += fmt::format("<td style=\"background:rgb({},{},{});color:{}\">{}</td>", r, g, b,
                         share > 0.45 ? "#fff" : "#111", m.at(t, p));
    }
    out += "</tr>\n";
  }
  return out + "</tbody></table>\n";
}

std::string per_class_table(const train::ConfusionMatrix& m, const std::vector<std::string>& classes) {
  std::string out =
      "<table class=\"numbers\" id=\"per-class\"><thead><tr><th>class</th><th>precision</th><th>recall</th>"
      "<th>F1</th><th>images</th></tr></thead><tbody>\n";
  for (int64_t c = 0; c < m.num_classes(); ++c) {
    int64_t support = 0;
    for (int64_t p = 0; p < m.num_classes(); ++p) support += m.at(c, p);
    const double precision = m.precision(c), recall = m.recall(c);
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    out += fmt::format("<tr><td>{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td></tr>\n",
                       html_escape(classes[c]), precision, recall, f1, support);
  }
  return out + "</tbody></table>\n";
}

struct Evaluation {
  std::string html;
  double accuracy = -1;
};

Evaluation evaluate_section(const train::RunSpec& spec, const train::Checkpoint& ck, const data::TrainingData& d,
                            int64_t hardest) {
  Evaluation e;
  auto& model = *ck.model;
  const auto& config = ck.config;
  torch::NoGradGuard no_grad;
  model.eval();
  const auto device = c10::Device(c10::kCPU);
  const auto r = train::evaluate(model, d.val, config, device);
  e.accuracy = r.confusion.accuracy();
  e.html += fmt::format(
      "<h2 id=\"validation\">Validation</h2>\n<p>The model of {} on the {} validation images: accuracy "
      "<b id=\"val-accuracy\">{:.4f}</b>, loss {:.4f}.</p>\n",
      ck.epoch > 0 ? fmt::format("epoch {}", ck.epoch) : "the run", r.confusion.total(), e.accuracy, r.loss);
  e.html += "<h3>Confusion matrix</h3>\n<p>Rows: the true class; columns: the predicted one; shade: the share of "
            "the row.</p>\n" +
            confusion_table(r.confusion, config.classes);
  e.html += "<h3>Per class</h3>\n" + per_class_table(r.confusion, config.classes);

  // Each image's loss and top 3, as the evaluation computes its outputs.
  const auto& images = d.val.images();
  const auto& labels = d.val.labels();
  const int64_t n = images.size(0);
  std::vector<at::Tensor> losses, top_p, top_i;
  const int64_t k = std::min<int64_t>(3, static_cast<int64_t>(config.classes.size()));
  for (int64_t start = 0; start < n; start += 1000) {
    const int64_t end = std::min(n, start + 1000);
    const auto x = transforms::functional::to_normalized(images.slice(0, start, end), config.mean, config.std);
    auto out = train::forward_with_tta(model, x, train::Precision::kFp32, config.tta);
    const auto log_p = model.ends_in_log_softmax() ? out : torch::log_softmax(out, 1);
    const auto y = labels.slice(0, start, end);
    losses.push_back(-log_p.gather(1, y.view({-1, 1})).view({-1}));
    const auto top = log_p.exp().topk(k, 1);
    top_p.push_back(std::get<0>(top));
    top_i.push_back(std::get<1>(top));
  }
  const auto loss = torch::cat(losses), probs = torch::cat(top_p), idx = torch::cat(top_i);
  const int64_t shown = std::min(hardest, n);
  const auto order = std::get<1>(loss.topk(shown));
  e.html += fmt::format(
      "<h3>The {} validation images with the highest loss</h3>\n<div class=\"hardest\" id=\"hardest\">\n", shown);
  for (int64_t i = 0; i < shown; ++i) {
    const int64_t j = order[i].item<int64_t>();
    const std::string truth = config.classes[labels[j].item<int64_t>()];
    std::string tops;
    for (int64_t t = 0; t < k; ++t)
      tops += fmt::format("<li>{} {:.1f}%</li>", html_escape(config.classes[idx[j][t].item<int64_t>()]),
                          100 * probs[j][t].item<double>());
    const int scale = images.size(2) <= 48 ? 3 : 1;
    e.html += fmt::format(
        "<figure>{}<figcaption><b>{}</b> (loss {:.2f}, image {})<ol>{}</ol></figcaption></figure>\n",
        png_img(images[j], "validation image " + std::to_string(j), scale), html_escape(truth),
        loss[j].item<double>(), j, tops);
  }
  e.html += "</div>\n";

  // Training images after the run's augmentation (seeded: the same grid each time).
  const int64_t count = std::min<int64_t>(32, d.train.images().size(0));
  if (count > 0) {
    at::Tensor batch = d.train.images().slice(0, 0, count);
    const auto& augment = spec.training.augment;
    if (!augment.empty()) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(spec.training.seed);
      batch = transforms::parse_augment(augment)(batch, gen);
    }
    std::vector<std::string> captions;
    for (int64_t i = 0; i < count; ++i) captions.push_back(config.classes[d.train.labels()[i].item<int64_t>()]);
    const int scale = batch.size(2) <= 48 ? 2 : 1;
    const int cols = 8;
    const auto grid = data::make_grid(batch, static_cast<int>((count + cols - 1) / cols), cols, scale, captions, 4);
    e.html += fmt::format("<h2 id=\"augmented\">Training images after augmentation</h2>\n<p>The first {} training "
                          "images through <code>{}</code>.</p>\n{}\n",
                          count, augment.empty() ? "no augmentation (the run has none)" : html_escape(augment),
                          png_img(grid, "training images after augmentation", 1));
  }
  return e;
}

struct RunFolder {
  nlohmann::json config;
  train::RunSpec spec;
  std::vector<train::EpochMetrics> rows;
};

// config.json and metrics.csv of a run folder, checked.
RunFolder read_run_folder(const std::string& run_dir) {
  std::error_code ec;
  BIRDPLANE_CHECK(fs::is_directory(run_dir, ec), "{}: no such folder (expected a run folder, runs/<name>)", run_dir);
  const std::string config_path = (fs::path(run_dir) / "config.json").string();
  BIRDPLANE_CHECK(fs::exists(config_path, ec), "{}: not a run folder (it has no config.json)", run_dir);
  RunFolder f;
  f.config = nlohmann::json::parse(read_text(config_path), nullptr, false);
  BIRDPLANE_CHECK(!f.config.is_discarded() && f.config.is_object(), "{}: not JSON; the file is damaged", config_path);
  try {
    f.spec = train::RunSpec::from_config(f.config);
  } catch (const std::exception& e) {
    fail("{}: not a birdplane run's config ({})", config_path, e.what());
  }
  const std::string metrics_path = (fs::path(run_dir) / "metrics.csv").string();
  BIRDPLANE_CHECK(fs::exists(metrics_path, ec), "{}: missing; the run has not finished an epoch yet", metrics_path);
  {
    std::ifstream in(metrics_path);
    std::string header;
    std::getline(in, header);
    BIRDPLANE_CHECK(header.rfind("epoch,train_loss,train_accuracy", 0) == 0,
                    "{}: not birdplane's metrics (its first line is '{}'); the file is damaged", metrics_path,
                    header.substr(0, 80));
  }
  f.rows = train::read_metrics(metrics_path);
  return f;
}

std::string folder_name(const std::string& run_dir) {
  const auto p = fs::path(run_dir).lexically_normal();
  return p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

// Settings as "path.to.key" -> value text, for the comparison's table.
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

constexpr const char* kStyle = R"CSS(
body { font-family: sans-serif; max-width: 70em; margin: 1.5em auto; padding: 0 1em; color: #111; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
table.confusion td { text-align: right; min-width: 3em; font-variant-numeric: tabular-nums; }
.plots svg { max-width: 100%; height: auto; margin-right: 1em; }
.hardest { display: flex; flex-wrap: wrap; }
.hardest figure { width: 11em; margin: 0.4em; font-size: 0.85em; }
.hardest img, img { image-rendering: pixelated; }
.hardest ol { margin: 0.2em 0; padding-left: 1.4em; }
.note { background: #fff6d5; border: 1px solid #c8a600; padding: 0.4em 0.8em; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
)CSS";

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string html_page(const std::string& title, const std::string& body) {
  return fmt::format("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>"
                     "<link rel=\"icon\" href=\"data:,\"><style>{}</style></head><body>\n{}</body></html>\n",
                     html_escape(title), kStyle, body);
}

RunReportResult write_run_report(const std::string& run_dir, const RunReportOptions& options) {
  std::error_code ec;
  const RunFolder folder = read_run_folder(run_dir);
  const auto& config = folder.config;
  const auto& spec = folder.spec;
  const auto& rows = folder.rows;
  RunReportResult result;
  result.path = options.out.empty() ? (fs::path(run_dir) / "report.html").string() : options.out;
  result.epochs = static_cast<int64_t>(rows.size());
  const std::string name = folder_name(run_dir);
  const std::string results_path = (fs::path(run_dir) / "results.json").string();
  const bool finished = fs::exists(results_path, ec);
  nlohmann::json results;
  if (finished) {
    results = nlohmann::json::parse(read_text(results_path), nullptr, false);
    BIRDPLANE_CHECK(!results.is_discarded(), "{}: not JSON; the file is damaged", results_path);
  }

  // The model: the finished run's model.pt, else the last checkpoint of a run in progress.
  std::string model_path;
  for (const char* f : {"model.pt", "checkpoint.pt"})
    if (model_path.empty() && fs::exists(fs::path(run_dir) / f, ec)) model_path = (fs::path(run_dir) / f).string();

  std::string html = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>birdplane run {}</title>"
      "<link rel=\"icon\" href=\"data:,\"><style>{}</style></head><body>\n",
      html_escape(name), kStyle);
  const int64_t planned = spec.training.epochs;
  html += fmt::format("<h1>Run {}</h1>\n<p id=\"status\">{} &middot; model <b>{}</b> &middot; {} of {} epochs{}</p>\n",
                      html_escape(name), finished ? "finished" : "in progress (a report of what is there so far)",
                      html_escape(spec.model.name), rows.size(), planned,
                      finished && results.contains("model_epoch")
                          ? fmt::format(" &middot; model.pt from epoch {} ({})", results.value("model_epoch", 0),
                                        html_escape(results.value("model_from", "last")))
                          : "");
  if (!rows.empty()) {
    const auto& last = rows.back();
    double seconds = 0;
    std::vector<double> rates;
    for (const auto& r : rows) {
      seconds += r.seconds;
      rates.push_back(r.images_per_second);
    }
    std::sort(rates.begin(), rates.end());
    html += fmt::format(
        "<table class=\"numbers\" id=\"summary\"><tr><th>last epoch</th><td>{}</td></tr><tr><th>training "
        "accuracy</th><td>{}</td></tr><tr><th>validation accuracy</th><td>{}</td></tr><tr><th>time in "
        "epochs</th><td>{:.1f} s</td></tr><tr><th>median images/s</th><td>{:.1f}</td></tr></table>\n",
        last.epoch, cell(last.train_accuracy, 6), cell(last.val_accuracy, 6), seconds, rates[rates.size() / 2]);
    html += "<h2 id=\"curves\">Curves</h2>\n" + curves(rows);
  }

  std::string note;
  std::string evaluation;
  if (!options.evaluate) {
    note = "not evaluated (--no-eval)";
  } else if (model_path.empty()) {
    note = "the run has no model file yet";
  } else {
    auto ck = train::load_checkpoint(model_path);  // a damaged file: an Error naming it
    auto data_spec = spec.data;
    data_spec.download = false;
    if (!options.data_dir.empty()) data_spec.data_dir = options.data_dir;
    try {
      std::optional<data::TrainingData> loaded;
      if (!options.data) loaded.emplace(data::load_training_data(data_spec, spec.training.seed));
      const auto& d = options.data ? *options.data : *loaded;
      if (d.val.images().size(0) == 0) {
        note = "the run has no validation images";
      } else {
        const auto e = evaluate_section(spec, ck, d, options.hardest);
        evaluation = e.html;
        result.evaluated = true;
        result.val_accuracy = e.accuracy;
      }
    } catch (const Error& e) {
      note = fmt::format("the run's data could not be read ({})", e.what());
    }
  }
  result.note = note;
  if (!note.empty())
    html += fmt::format("<p class=\"note\" id=\"note\">No validation sections: {}.</p>\n", html_escape(note));
  html += evaluation;
  if (!rows.empty()) html += "<h2 id=\"per-epoch\">Per epoch</h2>\n" + epoch_table(rows);
  html += "<h2 id=\"settings\">Settings and environment</h2>\n<p>From <code>config.json</code>.</p>\n<pre>" +
          html_escape(config.dump(2)) + "</pre>\n";
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  html += fmt::format("<p><small>Written by <code>birdplane report</code> on {}.</small></p>\n</body></html>\n", stamp);
  write_file_atomically(result.path, html);
  return result;
}

void write_comparison(const std::vector<std::string>& run_dirs, const std::string& out) {
  BIRDPLANE_CHECK(!run_dirs.empty(), "compare: no run folders given");
  std::vector<RunFolder> runs;
  std::vector<std::string> names;
  for (const auto& dir : run_dirs) {
    runs.push_back(read_run_folder(dir));
    names.push_back(folder_name(dir));
  }
  auto plot = [&](const std::string& title, const std::string& y_label, double train::EpochMetrics::*field) {
    LinePlot p{title, "epoch", y_label, {}};
    for (size_t i = 0; i < runs.size(); ++i) {
      Series s;
      s.label = names[i];
      for (const auto& r : runs[i].rows) {
        if (r.*field < 0) continue;
        s.x.push_back(static_cast<double>(r.epoch));
        s.y.push_back(r.*field);
      }
      if (!s.x.empty()) p.series.push_back(s);
    }
    return p.series.empty() ? std::string() : p.to_svg();
  };
  std::string html = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>birdplane: {} runs compared</title>"
      "<link rel=\"icon\" href=\"data:,\"><style>{}</style></head><body>\n<h1>{} runs compared</h1>\n",
      runs.size(), kStyle, runs.size());
  // Final figures.
  html += "<h2 id=\"final\">Final figures</h2>\n<table class=\"numbers\" id=\"final-figures\"><thead><tr><th>run</th>"
          "<th>model</th><th>epochs</th><th>training accuracy</th><th>validation accuracy</th><th>best validation "
          "accuracy</th><th>seconds</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& rows = runs[i].rows;
    double best = -1, seconds = 0;
    for (const auto& r : rows) {
      best = std::max(best, r.val_accuracy);
      seconds += r.seconds;
    }
    const train::EpochMetrics last = rows.empty() ? train::EpochMetrics{} : rows.back();
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td></tr>\n",
                        html_escape(names[i]), html_escape(runs[i].spec.model.name), rows.size(),
                        rows.empty() ? "" : cell(last.train_accuracy, 6), rows.empty() ? "" : cell(last.val_accuracy, 6),
                        cell(best, 6), seconds);
  }
  bool lr_varies = false;  // a learning-rate plot only when some run's rate changes
  for (const auto& run : runs)
    for (const auto& r : run.rows) lr_varies = lr_varies || (r.lr >= 0 && r.lr != run.rows.front().lr);
  html += "</tbody></table>\n<h2 id=\"curves\">Curves</h2>\n<div class=\"plots\">" +
          plot("Validation accuracy", "accuracy", &train::EpochMetrics::val_accuracy) +
          plot("Validation loss", "loss", &train::EpochMetrics::val_loss) +
          plot("Training loss", "loss", &train::EpochMetrics::train_loss) +
          (lr_varies ? plot("Learning rate", "learning rate", &train::EpochMetrics::lr) : std::string()) + "</div>\n";
  // Settings where the runs differ (the run's name and folder aside).
  std::vector<std::map<std::string, std::string>> settings(runs.size());
  std::map<std::string, bool> keys;
  for (size_t i = 0; i < runs.size(); ++i) {
    flatten(runs[i].spec.to_json(), "", settings[i]);
    for (const auto& [k, v] : settings[i]) keys[k] = true;
  }
  html += "<h2 id=\"settings\">Settings that differ</h2>\n<table id=\"differences\"><thead><tr><th>setting</th>";
  for (const auto& n : names) html += "<th>" + html_escape(n) + "</th>";
  html += "</tr></thead><tbody>\n";
  int differing = 0;
  for (const auto& [key, unused] : keys) {
    if (key == "name" || key == "runs_dir") continue;
    bool same = true;
    for (size_t i = 1; i < runs.size(); ++i) same = same && settings[i][key] == settings[0][key];
    if (same) continue;
    ++differing;
    html += "<tr><th>" + html_escape(key) + "</th>";
    for (size_t i = 0; i < runs.size(); ++i) html += "<td>" + html_escape(settings[i][key]) + "</td>";
    html += "</tr>\n";
  }
  html += "</tbody></table>\n";
  if (differing == 0) html += "<p>The runs have the same settings.</p>\n";
  html += "</body></html>\n";
  write_file_atomically(out, html);
}

}  // namespace birdplane::report
