// Learning-rate schedules, as torch.optim.lr_scheduler defines them: step, multi-step, exponential,
// cosine annealing (with a floor), one-cycle, a piecewise-linear schedule through given points, and
// reduce-on-plateau, each stepped per epoch or per batch, with an optional linear warmup before it.
//   train::ScheduleSpec s;
//   s.kind = train::ScheduleKind::kCosine; s.warmup = 5; s.warmup_factor = 0.01;
//   train::LrSchedule schedule(s, /*epochs=*/100, /*steps_per_epoch=*/98);
//   double lr = schedule.rate(0.1, epoch, step);   // the rate of one parameter group
// Every schedule but plateau is a function of where the run is, so a resumed run gets the rate an
// uninterrupted one had; plateau's state (state() / load_state()) goes into the checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace birdplane::train {

/// Which schedule. kConstant keeps the optimizer's rate (after the warmup, when there is one).
enum class ScheduleKind { kConstant, kStep, kMultiStep, kExponential, kCosine, kOneCycle, kPiecewise, kPlateau };
inline constexpr ScheduleKind kScheduleKinds[] = {
    ScheduleKind::kConstant, ScheduleKind::kStep,     ScheduleKind::kMultiStep, ScheduleKind::kExponential,
    ScheduleKind::kCosine,   ScheduleKind::kOneCycle, ScheduleKind::kPiecewise, ScheduleKind::kPlateau};
/// "constant", "step", "multistep", "exponential", "cosine", "onecycle", "piecewise", "plateau".
std::string to_string(ScheduleKind kind);
/// The names above (a SettingError for "schedule" otherwise).
ScheduleKind parse_schedule(const std::string& text);

/// When the rate changes: after every epoch (PyTorch's scheduler.step() once an epoch) or before
/// every batch (scheduler.step() after each optimizer step). Lengths (step_size, milestones, warmup)
/// count in this unit.
enum class ScheduleUnit { kEpoch, kStep };
inline constexpr ScheduleUnit kScheduleUnits[] = {ScheduleUnit::kEpoch, ScheduleUnit::kStep};
std::string to_string(ScheduleUnit unit);
/// "epoch" or "step" (a SettingError for "schedule_per" otherwise).
ScheduleUnit parse_schedule_unit(const std::string& text);

/// A validation figure that a run watches (reduce-on-plateau, the best checkpoint, early stopping): the
/// loss (lower is better) or the accuracy.
enum class Monitor { kValLoss, kValAccuracy };
inline constexpr Monitor kMonitors[] = {Monitor::kValLoss, Monitor::kValAccuracy};
std::string to_string(Monitor metric);
/// "val_loss" or "val_accuracy" (a SettingError for `setting` otherwise).
Monitor parse_monitor(const std::string& text, const char* setting);

/// A schedule's settings. Field names are the setting names in errors and in config.json.
struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::kConstant;
  /// empty: per step for onecycle and piecewise (defined over the run's batches), per epoch otherwise
  std::optional<ScheduleUnit> per;
  int64_t step_size = 30;          ///< step: the rate is multiplied by gamma every step_size units (StepLR)
  std::vector<int64_t> milestones; ///< multistep: ... at each of these (MultiStepLR)
  double gamma = 0.1;              ///< step, multistep, exponential: the factor
  double min_lr = 0.0;             ///< cosine: the floor (eta_min); plateau: the lowest rate (min_lr)
  int64_t warmup = 0;              ///< units of linear warmup before the schedule (LinearLR then SequentialLR)
  double warmup_factor = 0.01;     ///< the warmup's first rate, as a fraction of the rate (start_factor)
  // onecycle (OneCycleLR with max_lr the optimizer's rate)
  double pct_start = 0.3;          ///< the rising part's share of the run
  double div_factor = 25.0;        ///< the first rate is lr / div_factor
  double final_div_factor = 1e4;   ///< the last rate is the first / final_div_factor
  bool anneal_linear = false;      ///< linear instead of cosine annealing ("anneal": "cos" or "linear")
  /// piecewise: (fraction of the run, factor) points, first at 0 and last at 1, fractions rising; the
  /// rate is lr times the factor interpolated linearly between them (np.interp in a LambdaLR)
  std::vector<std::pair<double, double>> points;
  // plateau (ReduceLROnPlateau, threshold_mode "rel", stepped after each validation)
  Monitor plateau_metric = Monitor::kValLoss;
  double plateau_factor = 0.1;
  int64_t plateau_patience = 10;
  double plateau_threshold = 1e-4;
  int64_t plateau_cooldown = 0;

  /// The unit actually used (per, or the kind's default).
  ScheduleUnit unit() const;
  /// Throws a SettingError naming the setting when a value is out of range or does not fit a run of
  /// `epochs` epochs (a warmup as long as the run, a milestone after its end).
  void validate(int64_t epochs) const;
  nlohmann::json to_json() const;
  /// Reads what to_json wrote; a missing object or key keeps the default (runs from before schedules).
  static ScheduleSpec from_json(const nlohmann::json& j);
};

/// Parses "0:0.2,0.23:1,1:0.07" into piecewise points (a SettingError for "lr_points" when malformed;
/// validate() checks the order and ends).
std::vector<std::pair<double, double>> parse_points(const std::string& text);
/// Parses "30,60,90" into milestones (a SettingError for "milestones").
std::vector<int64_t> parse_milestones(const std::string& text);

/// A schedule over one run: epochs of steps_per_epoch batches each.
class LrSchedule {
 public:
  LrSchedule(ScheduleSpec spec, int64_t epochs, int64_t steps_per_epoch);

  /// The rate of a parameter group whose own rate is `base` during batch `step` (0-based) of epoch
  /// `epoch` (0-based). Equals the rate torch.optim.lr_scheduler gives the group at that point.
  double rate(double base, int64_t epoch, int64_t step) const;
  /// Whether rate() ever differs from base.
  bool varies() const { return spec_.kind != ScheduleKind::kConstant || spec_.warmup > 0; }
  /// Reduce-on-plateau: the monitored figure after an epoch's validation (other kinds ignore it).
  void observe(double metric);
  /// Whether observe() wants the validation accuracy (rather than the loss).
  bool watches_accuracy() const { return spec_.plateau_metric == Monitor::kValAccuracy; }

  /// What a resumed run needs (plateau's best figure, counters and reductions; {} for the others).
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  double factor_after_warmup(double base, int64_t t) const;

  ScheduleSpec spec_;
  int64_t epochs_, steps_per_epoch_;
  // reduce-on-plateau
  std::optional<double> best_;
  int64_t bad_epochs_ = 0, cooldown_left_ = 0, reductions_ = 0;
};

}  // namespace birdplane::train
