#include "birdplane/train/schedule.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "common/json_fields.h"
#include "common/parse_named.h"
#include "common/number_list.h"

namespace birdplane::train {
namespace {

constexpr double kPi = 3.14159265358979323846;
// ReduceLROnPlateau's eps: a reduction smaller than this is not made.
constexpr double kPlateauEps = 1e-8;

bool finite_positive(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

std::string to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kStep: return "step";
    case ScheduleKind::kMultiStep: return "multistep";
    case ScheduleKind::kExponential: return "exponential";
    case ScheduleKind::kCosine: return "cosine";
    case ScheduleKind::kOneCycle: return "onecycle";
    case ScheduleKind::kPiecewise: return "piecewise";
    case ScheduleKind::kPlateau: return "plateau";
    case ScheduleKind::kConstant: break;
  }
  return "constant";
}

ScheduleKind parse_schedule(const std::string& text) { return parse_named(kScheduleKinds, text, "schedule"); }

std::string to_string(ScheduleUnit unit) { return unit == ScheduleUnit::kStep ? "step" : "epoch"; }

ScheduleUnit parse_schedule_unit(const std::string& text) {
  return parse_named(kScheduleUnits, text, "schedule_per");
}

std::string to_string(Monitor metric) {
  return metric == Monitor::kValAccuracy ? "val_accuracy" : "val_loss";
}

Monitor parse_monitor(const std::string& text, const char* setting) { return parse_named(kMonitors, text, setting); }

ScheduleUnit ScheduleSpec::unit() const {
  if (per) return *per;
  return kind == ScheduleKind::kOneCycle || kind == ScheduleKind::kPiecewise ? ScheduleUnit::kStep
                                                                               : ScheduleUnit::kEpoch;
}

void ScheduleSpec::validate(int64_t epochs) const {
  const bool per_step = unit() == ScheduleUnit::kStep;
  BIRDPLANE_CHECK_SETTING(warmup >= 0, "warmup", "{} is not allowed; expected 0 or more {}s", warmup,
                          to_string(unit()));
  BIRDPLANE_CHECK_SETTING(std::isfinite(warmup_factor) && warmup_factor > 0 && warmup_factor <= 1, "warmup_factor",
                          "{} is not allowed; expected a fraction of the rate in (0, 1]", warmup_factor);
  // A per-step warmup is checked against the run's steps when they are known (LrSchedule).
  BIRDPLANE_CHECK_SETTING(per_step || warmup < epochs, "warmup",
                          "{} epochs of warmup leave nothing of a {}-epoch run; expected fewer than {}", warmup,
                          epochs, epochs);
  BIRDPLANE_CHECK_SETTING(warmup == 0 || (kind != ScheduleKind::kOneCycle && kind != ScheduleKind::kPlateau),
                          "warmup", "{} does not take a warmup ({})", to_string(kind),
                          kind == ScheduleKind::kOneCycle ? "its first part rises from lr / div_factor (pct_start)"
                                                          : "it reacts to validation, which a warmup would hide");
  BIRDPLANE_CHECK_SETTING(kind != ScheduleKind::kPlateau || !per_step, "schedule_per",
                          "plateau changes the rate after validation, so it is stepped per epoch");
  switch (kind) {
    case ScheduleKind::kStep:
      BIRDPLANE_CHECK_SETTING(step_size >= 1, "step_size", "{} is not allowed; expected 1 or more", step_size);
      break;
    case ScheduleKind::kMultiStep:
      BIRDPLANE_CHECK_SETTING(!milestones.empty(), "milestones", "multistep needs at least one milestone");
      for (size_t i = 0; i < milestones.size(); ++i) {
        BIRDPLANE_CHECK_SETTING(milestones[i] >= 1 && (i == 0 || milestones[i] > milestones[i - 1]), "milestones",
                                "{} is not allowed; expected rising whole numbers of {}s from 1",
                                fmt::join(milestones, ","), to_string(unit()));
      }
      BIRDPLANE_CHECK_SETTING(per_step || milestones.back() < epochs, "milestones",
                              "{} is past the run's last epoch ({}); the rate would never change there",
                              milestones.back(), epochs - 1);
      break;
    case ScheduleKind::kOneCycle:
      BIRDPLANE_CHECK_SETTING(pct_start > 0 && pct_start < 1, "pct_start",
                              "{} is not allowed; expected a fraction of the run in (0, 1)", pct_start);
      BIRDPLANE_CHECK_SETTING(finite_positive(div_factor), "div_factor", "{} is not allowed; expected above 0",
                              div_factor);
      BIRDPLANE_CHECK_SETTING(finite_positive(final_div_factor), "final_div_factor",
                              "{} is not allowed; expected above 0", final_div_factor);
      break;
    case ScheduleKind::kPiecewise: {
      BIRDPLANE_CHECK_SETTING(points.size() >= 2, "lr_points",
                              "piecewise needs at least two points, the first at 0 and the last at 1 "
                              "(for example 0:0.2,0.23:1,1:0.07)");
      BIRDPLANE_CHECK_SETTING(points.front().first == 0 && points.back().first == 1, "lr_points",
                              "the first point must be at 0 and the last at 1 (fractions of the run), got {} and {}",
                              points.front().first, points.back().first);
      for (size_t i = 0; i < points.size(); ++i) {
        BIRDPLANE_CHECK_SETTING(std::isfinite(points[i].second) && points[i].second >= 0, "lr_points",
                                "factor {} is not allowed; expected 0 or more", points[i].second);
        BIRDPLANE_CHECK_SETTING(i == 0 || points[i].first > points[i - 1].first, "lr_points",
                                "the fractions must rise ({} after {})", points[i].first, points[i - 1].first);
      }
      break;
    }
    case ScheduleKind::kPlateau:
      BIRDPLANE_CHECK_SETTING(plateau_factor > 0 && plateau_factor < 1, "plateau_factor",
                              "{} is not allowed; expected a factor in (0, 1)", plateau_factor);
      BIRDPLANE_CHECK_SETTING(plateau_patience >= 0, "plateau_patience", "{} is not allowed; expected 0 or more",
                              plateau_patience);
      BIRDPLANE_CHECK_SETTING(std::isfinite(plateau_threshold) && plateau_threshold >= 0, "plateau_threshold",
                              "{} is not allowed; expected 0 or more", plateau_threshold);
      BIRDPLANE_CHECK_SETTING(plateau_cooldown >= 0, "plateau_cooldown", "{} is not allowed; expected 0 or more",
                              plateau_cooldown);
      break;
    case ScheduleKind::kConstant:
    case ScheduleKind::kExponential:
    case ScheduleKind::kCosine: break;
  }
  if (kind == ScheduleKind::kStep || kind == ScheduleKind::kMultiStep || kind == ScheduleKind::kExponential) {
    BIRDPLANE_CHECK_SETTING(finite_positive(gamma), "gamma", "{} is not allowed; expected above 0", gamma);
  }
  BIRDPLANE_CHECK_SETTING(std::isfinite(min_lr) && min_lr >= 0, "min_lr", "{} is not allowed; expected 0 or more",
                          min_lr);
}

nlohmann::json ScheduleSpec::to_json() const {
  nlohmann::json points_json = nlohmann::json::array();
  for (const auto& [x, y] : points) points_json.push_back({x, y});
  return {{"name", to_string(kind)},
          {"per", per ? to_string(*per) : std::string()},
          {"step_size", step_size},
          {"milestones", milestones},
          {"gamma", gamma},
          {"min_lr", min_lr},
          {"warmup", warmup},
          {"warmup_factor", warmup_factor},
          {"pct_start", pct_start},
          {"div_factor", div_factor},
          {"final_div_factor", final_div_factor},
          {"anneal", anneal_linear ? "linear" : "cos"},
          {"points", points_json},
          {"plateau_metric", to_string(plateau_metric)},
          {"plateau_factor", plateau_factor},
          {"plateau_patience", plateau_patience},
          {"plateau_threshold", plateau_threshold},
          {"plateau_cooldown", plateau_cooldown}};
}

ScheduleSpec ScheduleSpec::from_json(const nlohmann::json& j) {
  ScheduleSpec s;
  if (j.is_null()) return s;
  json_fields::require_whole(j, {"step_size", "milestones", "warmup", "plateau_patience", "plateau_cooldown"});
  s.kind = parse_schedule(j.value("name", std::string("constant")));
  const auto per = j.value("per", std::string());
  if (!per.empty()) s.per = parse_schedule_unit(per);
  s.step_size = j.value("step_size", s.step_size);
  s.milestones = j.value("milestones", s.milestones);
  s.gamma = j.value("gamma", s.gamma);
  s.min_lr = j.value("min_lr", s.min_lr);
  s.warmup = j.value("warmup", s.warmup);
  s.warmup_factor = j.value("warmup_factor", s.warmup_factor);
  s.pct_start = j.value("pct_start", s.pct_start);
  s.div_factor = j.value("div_factor", s.div_factor);
  s.final_div_factor = j.value("final_div_factor", s.final_div_factor);
  const auto anneal = j.value("anneal", std::string("cos"));
  BIRDPLANE_CHECK_SETTING(anneal == "cos" || anneal == "linear", "anneal",
                          "'{}' is not supported; expected cos or linear", anneal);
  s.anneal_linear = anneal == "linear";
  if (j.contains("points")) {
    for (const auto& p : j.at("points")) {
      BIRDPLANE_CHECK_SETTING(p.is_array() && p.size() == 2, "lr_points", "{} is not a [fraction, factor] pair",
                              p.dump());
      s.points.emplace_back(p.at(0).get<double>(), p.at(1).get<double>());
    }
  }
  s.plateau_metric = parse_monitor(j.value("plateau_metric", std::string("val_loss")), "plateau_metric");
  s.plateau_factor = j.value("plateau_factor", s.plateau_factor);
  s.plateau_patience = j.value("plateau_patience", s.plateau_patience);
  s.plateau_threshold = j.value("plateau_threshold", s.plateau_threshold);
  s.plateau_cooldown = j.value("plateau_cooldown", s.plateau_cooldown);
  return s;
}

std::vector<std::pair<double, double>> parse_points(const std::string& text) {
  std::vector<std::pair<double, double>> points;
  for (const auto& item : split_list(text, ',')) {
    const auto parts = split_list(item, ':');
    double x = 0, y = 0;
    BIRDPLANE_CHECK_SETTING(parts.size() == 2 && parse_finite(parts[0], x) && parse_finite(parts[1], y), "lr_points",
                            "'{}' is not a point; expected FRACTION:FACTOR pairs such as 0:0.2,0.23:1,1:0.07", item);
    points.emplace_back(x, y);
  }
  return points;
}

std::vector<int64_t> parse_milestones(const std::string& text) {
  std::vector<int64_t> out;
  for (const auto& item : split_list(text, ',')) {
    int64_t v = 0;
    BIRDPLANE_CHECK_SETTING(parse_whole(item, v), "milestones", "'{}' is not a whole number (in '{}')", item, text);
    out.push_back(v);
  }
  return out;
}

LrSchedule::LrSchedule(ScheduleSpec spec, int64_t epochs, int64_t steps_per_epoch)
    : spec_(std::move(spec)), epochs_(epochs), steps_per_epoch_(std::max<int64_t>(1, steps_per_epoch)) {
  spec_.validate(epochs_);
  const int64_t total = spec_.unit() == ScheduleUnit::kStep ? epochs_ * steps_per_epoch_ : epochs_;
  BIRDPLANE_CHECK_SETTING(spec_.warmup < total, "warmup",
                          "{} steps of warmup leave nothing of a run of {} steps; expected fewer", spec_.warmup,
                          total);
}

double LrSchedule::rate(double base, int64_t epoch, int64_t step) const {
  const bool per_step = spec_.unit() == ScheduleUnit::kStep;
  const int64_t t = per_step ? epoch * steps_per_epoch_ + step : epoch;
  const int64_t w = spec_.warmup;
  if (t < w) {
    // LinearLR(start_factor, 1, total_iters=w): the factor rises from start_factor to 1 in w units.
    const double f = spec_.warmup_factor + (1.0 - spec_.warmup_factor) * static_cast<double>(t) / static_cast<double>(w);
    return base * f;
  }
  return factor_after_warmup(base, t - w);
}

double LrSchedule::factor_after_warmup(double base, int64_t t) const {
  const bool per_step = spec_.unit() == ScheduleUnit::kStep;
  // The length of the schedule after the warmup, in its units.
  const int64_t length = (per_step ? epochs_ * steps_per_epoch_ : epochs_) - spec_.warmup;
  const double g = spec_.gamma;
  switch (spec_.kind) {
    case ScheduleKind::kConstant: return base;
    case ScheduleKind::kStep: return base * std::pow(g, static_cast<double>(t / spec_.step_size));
    case ScheduleKind::kMultiStep: {
      const auto passed = std::upper_bound(spec_.milestones.begin(), spec_.milestones.end(), t) -
                          spec_.milestones.begin();
      return base * std::pow(g, static_cast<double>(passed));
    }
    case ScheduleKind::kExponential: return base * std::pow(g, static_cast<double>(t));
    case ScheduleKind::kCosine: {
      // CosineAnnealingLR with T_max the schedule's length; past it the rate stays at the floor.
      const double c = std::min(t, length);
      return spec_.min_lr + (base - spec_.min_lr) * (1 + std::cos(kPi * c / static_cast<double>(length))) / 2;
    }
    case ScheduleKind::kOneCycle: {
      // OneCycleLR (two phases, cycle_momentum off): lr/div_factor up to lr by step pct_start*T - 1, then
      // down to the first rate / final_div_factor at the last step, T - 1.
      const double initial = base / spec_.div_factor, floor = initial / spec_.final_div_factor;
      const double end_up = spec_.pct_start * static_cast<double>(length) - 1;
      const double end_down = static_cast<double>(length) - 1;
      const double x = static_cast<double>(std::min(t, length - 1));
      double from = initial, to = base, pct = 0;
      if (x <= end_up) {
        pct = x / end_up;
      } else {
        from = base;
        to = floor;
        pct = (x - end_up) / (end_down - end_up);
      }
      if (spec_.anneal_linear) return (to - from) * pct + from;
      return to + (from - to) / 2.0 * (std::cos(kPi * pct) + 1);
    }
    case ScheduleKind::kPiecewise: {
      // np.interp(t, fractions * length, factors)
      const double x = static_cast<double>(t);
      const auto& p = spec_.points;
      const double len = static_cast<double>(length);
      if (x <= p.front().first * len) return base * p.front().second;
      for (size_t i = 1; i < p.size(); ++i) {
        const double x0 = p[i - 1].first * len, x1 = p[i].first * len;
        if (x <= x1) {
          const double slope = (p[i].second - p[i - 1].second) / (x1 - x0);
          return base * (slope * (x - x0) + p[i - 1].second);
        }
      }
      return base * p.back().second;
    }
    case ScheduleKind::kPlateau: {
      double lr = base;
      // Once a reduction is too small to make, every later one is too (the count comes from a file:
      // this stops after a few dozen steps whatever it says).
      for (int64_t i = 0; i < reductions_; ++i) {
        const double next = std::max(lr * spec_.plateau_factor, spec_.min_lr);
        if (lr - next <= kPlateauEps) break;
        lr = next;
      }
      return lr;
    }
  }
  return base;
}

void LrSchedule::observe(double metric) {
  if (spec_.kind != ScheduleKind::kPlateau) return;
  // ReduceLROnPlateau.step with threshold_mode "rel".
  const bool lower_is_better = spec_.plateau_metric == Monitor::kValLoss;
  const double th = spec_.plateau_threshold;
  const bool better = !best_ || (lower_is_better ? metric < *best_ * (1 - th) : metric > *best_ * (1 + th));
  if (better) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > spec_.plateau_patience) {
    ++reductions_;
    cooldown_left_ = spec_.plateau_cooldown;
    bad_epochs_ = 0;
  }
}

nlohmann::json LrSchedule::state() const {
  if (spec_.kind != ScheduleKind::kPlateau) return nlohmann::json::object();
  return {{"best", best_ ? nlohmann::json(*best_) : nlohmann::json()},
          {"bad_epochs", bad_epochs_},
          {"cooldown_left", cooldown_left_},
          {"reductions", reductions_}};
}

void LrSchedule::load_state(const nlohmann::json& state) {
  if (spec_.kind != ScheduleKind::kPlateau || !state.is_object() || state.empty()) return;
  json_fields::require_whole(state, {"bad_epochs", "cooldown_left", "reductions"});
  best_.reset();
  if (state.contains("best") && !state.at("best").is_null()) best_ = state.at("best").get<double>();
  bad_epochs_ = state.at("bad_epochs").get<int64_t>();
  cooldown_left_ = state.at("cooldown_left").get<int64_t>();
  reductions_ = state.at("reductions").get<int64_t>();
  BIRDPLANE_CHECK(bad_epochs_ >= 0 && cooldown_left_ >= 0 && reductions_ >= 0,
                  "the saved plateau state has a negative counter ({})", state.dump());
}

}  // namespace birdplane::train
