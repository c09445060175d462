#include "birdplane/train/mixing.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "birdplane/check.h"

namespace birdplane::train {

void MixSpec::validate() const {
  BIRDPLANE_CHECK_SETTING(std::isfinite(mixup_alpha) && mixup_alpha >= 0, "mixup_alpha",
                          "{} is not allowed; expected 0 (off) or an alpha above 0", mixup_alpha);
  BIRDPLANE_CHECK_SETTING(std::isfinite(cutmix_alpha) && cutmix_alpha >= 0, "cutmix_alpha",
                          "{} is not allowed; expected 0 (off) or an alpha above 0", cutmix_alpha);
  BIRDPLANE_CHECK_SETTING(mix_prob >= 0 && mix_prob <= 1, "mix_prob", "{} is not allowed; expected a chance in [0, 1]",
                          mix_prob);
  BIRDPLANE_CHECK_SETTING(switch_prob >= 0 && switch_prob <= 1, "switch_prob",
                          "{} is not allowed; expected a chance in [0, 1]", switch_prob);
}

nlohmann::json MixSpec::to_json() const {
  return {{"mixup_alpha", mixup_alpha}, {"cutmix_alpha", cutmix_alpha}, {"mix_prob", mix_prob},
          {"switch_prob", switch_prob}};
}

MixSpec MixSpec::from_json(const nlohmann::json& j) {
  MixSpec m;
  if (!j.is_object()) return m;
  m.mixup_alpha = j.value("mixup_alpha", 0.0);
  m.cutmix_alpha = j.value("cutmix_alpha", 0.0);
  m.mix_prob = j.value("mix_prob", 1.0);
  m.switch_prob = j.value("switch_prob", 0.5);
  return m;
}

at::Tensor one_hot_targets(const at::Tensor& labels, int64_t num_classes) {
  return at::one_hot(labels, num_classes).to(at::kFloat);
}

void mixup_(at::Tensor& images, at::Tensor& targets, double lambda) {
  auto images_rolled = images.roll(1, 0), targets_rolled = targets.roll(1, 0);
  images_rolled.mul_(1.0 - lambda);
  images.mul_(lambda).add_(images_rolled);
  targets_rolled.mul_(1.0 - lambda);
  targets.mul_(lambda).add_(targets_rolled);
}

double cutmix_(at::Tensor& images, at::Tensor& targets, double lambda, int64_t cx, int64_t cy) {
  const int64_t h = images.size(-2), w = images.size(-1);
  const double r = 0.5 * std::sqrt(1.0 - lambda);
  const auto half_w = static_cast<int64_t>(r * static_cast<double>(w));
  const auto half_h = static_cast<int64_t>(r * static_cast<double>(h));
  const int64_t x1 = std::max<int64_t>(cx - half_w, 0), y1 = std::max<int64_t>(cy - half_h, 0);
  const int64_t x2 = std::min<int64_t>(cx + half_w, w), y2 = std::min<int64_t>(cy + half_h, h);
  if (x2 > x1 && y2 > y1) {
    const auto rolled = images.roll(1, 0);
    images.slice(2, y1, y2).slice(3, x1, x2).copy_(rolled.slice(2, y1, y2).slice(3, x1, x2));
  }
  const double kept = 1.0 - static_cast<double>((x2 - x1) * (y2 - y1)) / static_cast<double>(w * h);
  auto targets_rolled = targets.roll(1, 0);
  targets_rolled.mul_(1.0 - kept);
  targets.mul_(kept).add_(targets_rolled);
  return kept;
}

namespace {

double uniform(at::Generator& gen) { return at::rand({1}, gen, at::kDouble).item<double>(); }

// Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a) (what _sample_dirichlet([a, a])[0] draws).
double beta(double alpha, at::Generator& gen) {
  const auto g = at::_standard_gamma(at::full({2}, alpha, at::kDouble), gen);
  const double x = g[0].item<double>(), y = g[1].item<double>();
  return x + y > 0 ? x / (x + y) : 0.5;
}

}  // namespace

MixResult mix_batch(at::Tensor& images, const at::Tensor& labels, int64_t num_classes, const MixSpec& spec,
                    at::Generator& gen) {
  MixResult r;
  r.targets = one_hot_targets(labels, num_classes);
  if (!spec.enabled() || uniform(gen) >= spec.mix_prob) return r;
  const bool both = spec.mixup_alpha > 0 && spec.cutmix_alpha > 0;
  r.cutmix = both ? uniform(gen) < spec.switch_prob : spec.cutmix_alpha > 0;
  r.mixed = true;
  r.lambda = beta(r.cutmix ? spec.cutmix_alpha : spec.mixup_alpha, gen);
  if (r.cutmix) {
    const auto cx = static_cast<int64_t>(uniform(gen) * static_cast<double>(images.size(-1)));
    const auto cy = static_cast<int64_t>(uniform(gen) * static_cast<double>(images.size(-2)));
    r.lambda = cutmix_(images, r.targets, r.lambda, std::min(cx, images.size(-1) - 1), std::min(cy, images.size(-2) - 1));
  } else {
    mixup_(images, r.targets, r.lambda);
  }
  return r;
}

}  // namespace birdplane::train
