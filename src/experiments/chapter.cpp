#include "birdplane/experiments/chapter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/model.h"
#include "birdplane/report/run_report.h"
#include "common/files.h"
#include "birdplane/transforms/geometry.h"

namespace birdplane::experiments {

namespace {

// index.html beside table.md: the same tables and plots as one page in the run reports' style, with a
// link to the report of each training run the experiment keeps in its folder (written here).
void write_page(const Output& output, const std::string& dir) {
  namespace fs = std::filesystem;
  using report::html_escape;
  std::string body = "<h1>Experiment " + html_escape(output.name) + "</h1>\n";
  int index = 0;
  for (const auto& t : output.tables) {
    body += "<h2>" + html_escape(t.title) + "</h2>\n<table class=\"numbers\" id=\"table-" + std::to_string(index++) +
            "\"><thead><tr>";
    for (const auto& c : t.columns) body += "<th>" + html_escape(c) + "</th>";
    body += "</tr></thead><tbody>\n";
    for (const auto& row : t.rows) {
      body += "<tr>";
      for (const auto& v : row)
        body += "<td>" + html_escape(v.is_string() ? v.get<std::string>()
                                     : v.is_number_float() ? fmt::format("{:.4g}", v.get<double>())
                                                           : v.dump()) +
                "</td>";
      body += "</tr>\n";
    }
    body += "</tbody></table>\n";
  }
  body += "<div class=\"plots\">";
  for (const auto& [file, plot] : output.plots) body += plot.to_svg();
  for (const auto& [file, chart] : output.bar_charts) body += chart.to_svg();
  body += "</div>\n";
  std::string runs;
  std::error_code ec;
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && fs::exists(e.path() / "config.json") && fs::exists(e.path() / "metrics.csv"))
      folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  for (const auto& f : folders) {
    const std::string name = f.filename().string();
    try {
      report::write_run_report(f.string());
      runs += fmt::format("<li><a href=\"{0}/report.html\">{0}</a></li>\n", html_escape(name));
    } catch (const std::exception& e) {
      runs += fmt::format("<li>{} (no report: {})</li>\n", html_escape(name), html_escape(e.what()));
    }
  }
  if (!runs.empty()) body += "<h2>Training runs</h2>\n<ul id=\"runs\">\n" + runs + "</ul>\n";
  body += "<p><small>Also in this folder: <code>table.md</code>, <code>table.json</code> and the plots as SVG "
          "files.</small></p>\n";
  write_file_atomically((fs::path(dir) / "index.html").string(), report::html_page("experiment " + output.name, body));
}

}  // namespace

void write_outputs(const Output& output, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  BIRDPLANE_CHECK(!ec, "cannot create {}: {}", dir, ec.message());
  std::string md = "## experiment " + output.name + "\n\n";
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& t : output.tables) {
    md += t.to_markdown() + "\n";
    tables.push_back(t.to_json());
  }
  for (const auto& [file, plot] : output.plots) {
    plot.write_svg((std::filesystem::path(dir) / file).string());
    md += fmt::format("![{}]({})\n\n", plot.title, file);
  }
  for (const auto& [file, chart] : output.bar_charts) {
    chart.write_svg((std::filesystem::path(dir) / file).string());
    md += fmt::format("![{}]({})\n\n", chart.title, file);
  }
  write_file_atomically((std::filesystem::path(dir) / "table.md").string(), md);
  nlohmann::json j = {{"name", output.name}, {"summary", output.summary}, {"tables", tables}};
  write_file_atomically((std::filesystem::path(dir) / "table.json").string(), j.dump(2) + "\n");
  write_page(output, dir);
}

Output softmax_experiment(uint64_t seed, int64_t count, int64_t classes) {
  BIRDPLANE_CHECK(count >= 1 && classes >= 2, "softmax experiment: needs at least 1 vector of 2 classes");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto logits = at::randn({count, classes}, gen, torch::kFloat64) * 3.0;
  auto target = at::randint(0, classes, {count}, gen, torch::kInt64);
  auto p = torch::softmax(logits, 1);
  const double pmin = p.min().item<double>(), pmax = p.max().item<double>();
  const double sum_err = (p.sum(1) - 1).abs().max().item<double>();
  // Order kept: sorting by logit and by probability gives the same permutation (no ties in randn).
  const bool order_kept = torch::equal(logits.argsort(int64_t{1}, false), p.argsort(int64_t{1}, false));
  const auto nll = torch::nll_loss(torch::log_softmax(logits, 1), target);
  const auto ce = torch::cross_entropy_loss(logits, target);
  const double loss_diff = (nll - ce).abs().item<double>();
  // float32, as a model computes it.
  auto logits32 = logits.to(torch::kFloat32);
  const double loss_diff32 = (torch::nll_loss(torch::log_softmax(logits32, 1), target) -
                              torch::cross_entropy_loss(logits32, target)).abs().item<double>();
  // Softmax is unchanged by adding a constant to every logit (what log-sum-exp stability relies on).
  const double shift_err = (torch::softmax(logits + 100.0, 1) - p).abs().max().item<double>();

  Output out;
  out.name = "softmax";
  report::Table t;
  t.title = fmt::format("Softmax on {} random logit vectors of {} classes (float64, seed {})", count, classes, seed);
  t.columns = {"property", "measured", "holds"};
  t.rows.push_back({"smallest probability (> 0)", pmin, pmin > 0});
  t.rows.push_back({"largest probability (< 1)", pmax, pmax < 1});
  t.rows.push_back({"largest |row sum - 1|", sum_err, sum_err < 1e-12});
  t.rows.push_back({"order of logits kept in every row", order_kept ? "all rows" : "not all rows", order_kept});
  t.rows.push_back({"largest |softmax(x + 100) - softmax(x)|", shift_err, shift_err < 1e-12});
  t.rows.push_back({"|NLLLoss(LogSoftmax(x)) - CrossEntropyLoss(x)|, float64", loss_diff, loss_diff < 1e-12});
  t.rows.push_back({"the same in float32", loss_diff32, loss_diff32 < 1e-5});
  out.tables.push_back(t);
  out.summary = {{"min_probability", pmin},     {"max_probability", pmax}, {"max_sum_error", sum_err},
                 {"order_kept", order_kept},    {"nll_vs_ce_float64", loss_diff},
                 {"nll_vs_ce_float32", loss_diff32}};

  report::LinePlot plot;
  plot.title = "softmax(s * (1, 2, 3)): order kept, sum 1";
  plot.x_label = "scale s of the logits";
  plot.y_label = "probability";
  plot.ymin = 0;
  plot.ymax = 1;
  std::vector<report::Series> series(4);
  for (int k = 0; k < 3; ++k) series[k].label = fmt::format("class with logit {}", k + 1);
  series[3].label = "sum";
  report::Table scaled;
  scaled.title = "softmax(s * (1, 2, 3))";
  scaled.columns = {"s", "p1", "p2", "p3", "sum"};
  for (int i = 0; i <= 50; ++i) {
    const double s = i * 0.1;
    auto q = torch::softmax(torch::tensor({1.0, 2.0, 3.0}, torch::kFloat64) * s, 0);
    for (int k = 0; k < 3; ++k) {
      series[k].x.push_back(s);
      series[k].y.push_back(q[k].item<double>());
    }
    series[3].x.push_back(s);
    series[3].y.push_back(q.sum().item<double>());
    if (i % 10 == 0)
      scaled.rows.push_back({s, q[0].item<double>(), q[1].item<double>(), q[2].item<double>(), q.sum().item<double>()});
  }
  plot.series = series;
  out.tables.push_back(scaled);
  out.plots.emplace_back("softmax.svg", plot);
  return out;
}

Output losses_experiment() {
  // Two classes, class 0 true: logits (z, 0) give p = sigmoid(z) for the true class.
  Output out;
  out.name = "losses";
  std::vector<double> ps;
  for (int i = 1; i <= 999; ++i) ps.push_back(i / 1000.0);
  report::Series ce_loss, mse_loss, ce_grad, mse_grad;
  ce_loss.label = ce_grad.label = "cross-entropy";
  mse_loss.label = mse_grad.label = "MSE (softmax vs one-hot)";
  report::Table t;
  t.title = "Loss and gradient (d loss / d true logit) against the predicted probability p of the true class";
  t.columns = {"p", "cross-entropy", "d CE / dz", "MSE", "d MSE / dz"};
  auto target = torch::tensor({int64_t{0}});
  auto onehot = torch::tensor({{1.0, 0.0}}, torch::kFloat64);
  for (double p : ps) {
    auto z = torch::tensor({{std::log(p / (1 - p)), 0.0}}, torch::kFloat64).requires_grad_(true);
    auto ce = torch::cross_entropy_loss(z, target);
    auto gce = torch::autograd::grad({ce}, {z})[0][0][0].item<double>();
    auto mse = torch::mse_loss(torch::softmax(z, 1), onehot);
    auto gmse = torch::autograd::grad({mse}, {z})[0][0][0].item<double>();
    ce_loss.x.push_back(p), ce_loss.y.push_back(ce.item<double>());
    mse_loss.x.push_back(p), mse_loss.y.push_back(mse.item<double>());
    ce_grad.x.push_back(p), ce_grad.y.push_back(gce);
    mse_grad.x.push_back(p), mse_grad.y.push_back(gmse);
    const int per_mille = static_cast<int>(std::lround(p * 1000));
    if (per_mille == 1 || per_mille == 10 || per_mille == 100 || per_mille == 250 || per_mille == 500 ||
        per_mille == 750 || per_mille == 900 || per_mille == 990 || per_mille == 999)
      t.rows.push_back({p, ce.item<double>(), gce, mse.item<double>(), gmse});
  }
  out.tables.push_back(t);
  // Where MSE's pull is weakest on a wrong prediction: the gradient at p = 0.01 against cross-entropy's.
  const double ratio_at_001 = mse_grad.y[9] / ce_grad.y[9];
  out.summary = {{"ce_grad_at_p_0.01", ce_grad.y[9]},
                 {"mse_grad_at_p_0.01", mse_grad.y[9]},
                 {"mse_over_ce_grad_at_p_0.01", ratio_at_001},
                 {"mse_grad_most_negative_at_p", ps[static_cast<size_t>(
                                                      std::min_element(mse_grad.y.begin(), mse_grad.y.end()) -
                                                      mse_grad.y.begin())]}};
  report::LinePlot lp;
  lp.title = "Loss against the probability of the true class";
  lp.x_label = "predicted probability p of the true class";
  lp.y_label = "loss";
  lp.ymin = 0;
  lp.ymax = 4;
  lp.series = {ce_loss, mse_loss};
  out.plots.emplace_back("losses.svg", lp);
  report::LinePlot gp;
  gp.title = "Gradient with respect to the true class's logit";
  gp.x_label = "predicted probability p of the true class";
  gp.y_label = "d loss / d logit";
  gp.ymin = -1;
  gp.ymax = 0.05;
  gp.series = {ce_grad, mse_grad};
  out.plots.emplace_back("gradients.svg", gp);
  return out;
}

at::Tensor shift_images(const at::Tensor& images, int64_t dx, int64_t dy, double fill) {
  namespace F = transforms::functional;
  const int64_t h = images.size(-2), w = images.size(-1);
  BIRDPLANE_CHECK(std::abs(dx) < w && std::abs(dy) < h, "shift ({}, {}) moves a {}x{} image out of the frame", dx, dy,
                  h, w);
  auto padded = F::pad_constant(images, std::max<int64_t>(dx, 0), std::max<int64_t>(dy, 0),
                                std::max<int64_t>(-dx, 0), std::max<int64_t>(-dy, 0), fill);
  return F::crop(padded, std::max<int64_t>(-dy, 0), std::max<int64_t>(-dx, 0), h, w).contiguous();
}

namespace {

// Trains `cfg` into dir/name: a new run folder, or with `resume` the one there continued from its
// checkpoint (a finished one only repeats its final evaluation). Returns the finished trainer; `result`
// receives the run's result, final accuracies included.
std::unique_ptr<train::Trainer> train_run(const train::RunSpec& cfg, const std::string& name,
                                          const data::ImageSet& train_set, const data::ImageSet& val_set,
                                          const std::vector<double>& mean, const std::vector<double>& std,
                                          const std::string& dir, bool resume, ExperimentObserver& obs,
                                          train::StopToken stop, train::TrainResult& result) {
  auto c = cfg;
  c.name = name;
  c.runs_dir = dir;
  const std::string run_path = (std::filesystem::path(dir) / name).string();
  auto trainer = std::make_unique<train::Trainer>(c, train_set, val_set, mean, std);
  const bool exists = resume && std::filesystem::exists(std::filesystem::path(run_path) / "config.json");
  auto run_dir = exists ? train::RunDir::open(run_path) : train::RunDir::create(run_path);
  if (exists) {
    trainer->resume_from(run_dir);
  } else {
    run_dir.write_config(trainer->run_record());
  }
  obs.on_run_start(name, c, run_dir.path());
  result = trainer->run(run_dir, &obs, stop);
  return trainer;
}

}  // namespace

Output translation_experiment(const TranslationOptions& opts, const data::ImageSet& train_set,
                              const data::ImageSet& val_set, const std::vector<double>& mean,
                              const std::vector<double>& std, const std::string& dir, ExperimentObserver* observer,
                              train::StopToken stop) {
  const int64_t width = val_set.images().size(3);
  BIRDPLANE_CHECK_SETTING(opts.max_shift >= 0 && opts.max_shift < width, "max_shift",
                          "{} is not allowed; expected 0 to {} pixels", opts.max_shift, width - 1);
  ExperimentObserver quiet;
  ExperimentObserver& obs = observer ? *observer : quiet;
  const auto models = opts.models.empty() ? std::vector<std::string>{opts.train.model.name} : opts.models;
  struct Arm {
    std::string model, name, augment;
    double seconds = 0;
    std::vector<double> acc_right, acc_diag;
  };
  std::vector<Arm> arms;
  for (const auto& model : models) {
    // One model keeps the folder names plain/ and augmented/; several are told apart by the model.
    const std::string prefix = models.size() == 1 ? "" : model + "-";
    arms.push_back({model, prefix + "plain", "", 0, {}, {}});
    arms.push_back({model, prefix + "augmented", opts.augment, 0, {}, {}});
  }
  for (auto& arm : arms) {
    auto cfg = opts.train;
    cfg.model.name = arm.model;
    cfg.training.augment = arm.augment;
    train::TrainResult result;
    auto trainer = train_run(cfg, arm.name, train_set, val_set, mean, std, dir, opts.resume, obs, stop, result);
    arm.seconds = result.total_seconds;
    for (int64_t s = 0; s <= opts.max_shift; ++s) {
      for (int diag = 0; diag < 2; ++diag) {
        data::ImageSet shifted(shift_images(val_set.images(), s, diag ? s : 0), val_set.labels(),
                               val_set.class_names(), val_set.source() + ", shifted");
        auto r = train::evaluate(trainer->model(), shifted, trainer->model_config(), c10::Device(c10::kCPU));
        (diag ? arm.acc_diag : arm.acc_right).push_back(r.confusion.accuracy());
      }
    }
  }
  Output out;
  out.name = "translation";
  report::Table t;
  t.title = fmt::format("{} on {} training / {} validation images, {} epochs: validation accuracy on shifted images",
                        fmt::join(models, ", "), *train_set.size(), *val_set.size(), opts.train.training.epochs);
  t.columns = {"shift (px)"};
  for (const auto& arm : arms) {
    t.columns.push_back(arm.name + ", right");
    t.columns.push_back(arm.name + ", right+down");
  }
  for (int64_t s = 0; s <= opts.max_shift; ++s) {
    const auto i = static_cast<size_t>(s);
    std::vector<nlohmann::json> row = {s};
    for (const auto& arm : arms) {
      row.push_back(arm.acc_right[i]);
      row.push_back(arm.acc_diag[i]);
    }
    t.rows.push_back(row);
  }
  out.tables.push_back(t);
  report::Table cost;
  cost.title = "Training time";
  cost.columns = {"run", "model", "augment", "seconds", "ratio to the model's plain run"};
  for (size_t k = 0; k < arms.size(); ++k) {
    const auto& arm = arms[k];
    cost.rows.push_back({arm.name, arm.model, arm.augment.empty() ? "none" : arm.augment, arm.seconds,
                         arm.seconds / arms[k - k % 2].seconds});
  }
  out.tables.push_back(cost);
  report::LinePlot plot;
  plot.title = "Validation accuracy against translation";
  plot.x_label = "shift of the validation images (pixels)";
  plot.y_label = "accuracy";
  for (const auto& arm : arms) {
    report::Series right{arm.name + ", right", {}, arm.acc_right, true};
    report::Series diag{arm.name + ", right+down", {}, arm.acc_diag, true};
    for (int64_t s = 0; s <= opts.max_shift; ++s) right.x.push_back(static_cast<double>(s)), diag.x.push_back(static_cast<double>(s));
    plot.series.push_back(right);
    plot.series.push_back(diag);
  }
  // Accuracy axis up to 1, so the legend (top right) sits above the curves.
  double lowest = 1;
  for (const auto& series : plot.series)
    for (double v : series.y) lowest = std::min(lowest, v);
  plot.ymin = std::floor(lowest * 10) / 10;
  plot.ymax = 1;
  out.plots.emplace_back("translation.svg", plot);
  // The first model's two arms under the names the one-model experiment has always used, then all.
  out.summary = {{"plain_seconds", arms[0].seconds},
                 {"augmented_seconds", arms[1].seconds},
                 {"plain_accuracy_by_shift_right", arms[0].acc_right},
                 {"augmented_accuracy_by_shift_right", arms[1].acc_right},
                 {"plain_accuracy_by_shift_diagonal", arms[0].acc_diag},
                 {"augmented_accuracy_by_shift_diagonal", arms[1].acc_diag},
                 {"arms", nlohmann::json::array()}};
  for (const auto& arm : arms)
    out.summary["arms"].push_back({{"run", arm.name},
                                   {"model", arm.model},
                                   {"augment", arm.augment},
                                   {"seconds", arm.seconds},
                                   {"accuracy_by_shift_right", arm.acc_right},
                                   {"accuracy_by_shift_diagonal", arm.acc_diag}});
  return out;
}

Output models_experiment(const ModelsOptions& opts, const data::ImageSet& train_set, const data::ImageSet& val_set,
                         const std::vector<double>& mean, const std::vector<double>& std, const std::string& dir,
                         ExperimentObserver* observer, train::StopToken stop) {
  BIRDPLANE_CHECK_SETTING(!opts.models.empty(), "models", "name at least one model");
  ExperimentObserver quiet;
  ExperimentObserver& obs = observer ? *observer : quiet;
  Output out;
  out.name = "models";
  report::Table t;
  t.title = fmt::format("The model family on {} training / {} validation images ({}), {} epochs, seed {}",
                        *train_set.size(), *val_set.size(), fmt::join(train_set.class_names(), ", "),
                        opts.train.training.epochs, opts.train.training.seed);
  t.columns = {"model", "parameters", "train accuracy", "validation accuracy", "seconds"};
  report::BarChart chart;
  chart.title = "Accuracy of each model";
  chart.y_label = "accuracy";
  chart.groups = {{"train", {}}, {"validation", {}}};
  out.summary = {{"models", nlohmann::json::array()}};
  for (const auto& model : opts.models) {
    auto cfg = opts.train;
    cfg.model.name = model;
    // The run's own final evaluation of both sets; no second pass here.
    train::TrainResult r;
    auto trainer = train_run(cfg, model, train_set, val_set, mean, std, dir, opts.resume, obs, stop, r);
    const int64_t params = nn::count_parameters(trainer->model());
    t.rows.push_back({model, params, r.final_train_accuracy, r.final_val_accuracy, r.total_seconds});
    chart.categories.push_back(model);
    chart.groups[0].values.push_back(r.final_train_accuracy);
    chart.groups[1].values.push_back(r.final_val_accuracy);
    out.summary["models"].push_back({{"model", model},
                                     {"parameters", params},
                                     {"train_accuracy", r.final_train_accuracy},
                                     {"val_accuracy", r.final_val_accuracy},
                                     {"seconds", r.total_seconds}});
  }
  double lowest = 1;
  for (const auto& g : chart.groups)
    for (double v : g.values) lowest = std::min(lowest, v);
  chart.ymin = std::max(0.0, std::floor(lowest * 10) / 10 - 0.1);
  chart.ymax = 1;
  out.tables.push_back(t);
  out.bar_charts.emplace_back("models.svg", chart);
  return out;
}

}  // namespace birdplane::experiments
