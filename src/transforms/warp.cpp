// Affine, rotate, perspective and elastic warps, built step by step like torchvision 0.14's tensor
// path (functional_tensor.py: _gen_affine_grid, _perspective_grid, _apply_grid_transform) so that
// each float32 operation happens in the same order and gives the same bits.
#include "birdplane/transforms/warp.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/color.h"
#include "birdplane/transforms/random.h"
#include "common/text.h"
#include "transforms/internal.h"

namespace birdplane::transforms {
namespace functional {
namespace {

constexpr double kDegToRad = M_PI / 180.0;  // what Python's math.radians multiplies by

void check_mode(InterpolationMode mode, const char* who) {
  BIRDPLANE_CHECK(mode != InterpolationMode::kBicubic,
                  "{}: interpolation bicubic is not supported for tensors (torchvision allows nearest and bilinear)",
                  who);
}

void check_fill(const Fill& fill, int64_t channels, const char* who) {
  if (!fill) return;
  BIRDPLANE_CHECK(fill->size() == 1 || static_cast<int64_t>(fill->size()) == channels,
                  "{}: fill has {} values; give one, or one per channel ({})", who, fill->size(), channels);
}

// Grids are float32 for integer images and the image's own dtype otherwise (torchvision's choice).
at::ScalarType grid_dtype(const at::Tensor& image) {
  return image.is_floating_point() ? image.scalar_type() : torch::kFloat32;
}

// The [1, oh, ow, 3] grid of output pixel coordinates (x, y, 1) shared by the affine and
// perspective grids; x runs over linspace(x0, x0 + ow - 1), y likewise.
at::Tensor base_grid(int64_t ow, int64_t oh, double x0, double y0, at::ScalarType dtype) {
  auto base = torch::empty({1, oh, ow, 3}, torch::TensorOptions().dtype(dtype));
  base.select(-1, 0).copy_(at::linspace(x0, x0 + static_cast<double>(ow) - 1.0, ow));
  base.select(-1, 1).copy_(at::linspace(y0, y0 + static_cast<double>(oh) - 1.0, oh).unsqueeze_(-1));
  base.select(-1, 2).fill_(1);
  return base;
}

// torchvision's _gen_affine_grid: output pixel centers (relative to the output center) through the
// matrix, normalized by the input size; [1, oh, ow, 2].
at::Tensor affine_grid(const std::array<double, 6>& m, int64_t w, int64_t h, int64_t ow, int64_t oh,
                       at::ScalarType dtype) {
  auto theta = torch::tensor(std::vector<double>(m.begin(), m.end()), torch::kFloat64).to(dtype).reshape({1, 2, 3});
  const double d = 0.5;
  // torchvision: linspace(-ow * 0.5 + d, ow * 0.5 + d - 1); written with the same double arithmetic.
  auto base = torch::empty({1, oh, ow, 3}, torch::TensorOptions().dtype(dtype));
  const double fw = static_cast<double>(ow), fh = static_cast<double>(oh);
  base.select(-1, 0).copy_(at::linspace(-fw * 0.5 + d, fw * 0.5 + d - 1, ow));
  base.select(-1, 1).copy_(at::linspace(-fh * 0.5 + d, fh * 0.5 + d - 1, oh).unsqueeze_(-1));
  base.select(-1, 2).fill_(1);
  auto rescaled = theta.transpose(1, 2) /
                  torch::tensor({0.5 * static_cast<double>(w), 0.5 * static_cast<double>(h)}, torch::kFloat64).to(dtype);
  return base.view({1, oh * ow, 3}).bmm(rescaled).view({1, oh, ow, 2});
}

// torchvision's _perspective_grid for an output of ow x oh.
at::Tensor perspective_grid(const std::array<double, 8>& c, int64_t ow, int64_t oh, at::ScalarType dtype) {
  auto theta1 = torch::tensor({c[0], c[1], c[2], c[3], c[4], c[5]}, torch::kFloat64).to(dtype).reshape({1, 2, 3});
  auto theta2 = torch::tensor({c[6], c[7], 1.0, c[6], c[7], 1.0}, torch::kFloat64).to(dtype).reshape({1, 2, 3});
  auto base = base_grid(ow, oh, 0.5, 0.5, dtype).view({1, oh * ow, 3});
  auto rescaled1 = theta1.transpose(1, 2) /
                   torch::tensor({0.5 * static_cast<double>(ow), 0.5 * static_cast<double>(oh)}, torch::kFloat64).to(dtype);
  auto grid1 = base.bmm(rescaled1);
  auto grid2 = base.bmm(theta2.transpose(1, 2));
  return (grid1 / grid2 - 1.0).view({1, oh, ow, 2});
}

// torchvision's _create_identity_grid: each pixel center in normalized coordinates, [1,H,W,2].
at::Tensor identity_grid(int64_t h, int64_t w) {
  auto space = [](int64_t s) {
    const double fs = static_cast<double>(s);
    return at::linspace((-fs + 1) / fs, (fs - 1) / fs, s);
  };
  auto yx = at::meshgrid({space(h), space(w)}, "ij");
  return torch::stack({yx[1], yx[0]}, -1).unsqueeze(0);
}

}  // namespace

namespace {

// torchvision's _apply_grid_transform: grid [1 or B, oh, ow, 2]; samples every image of the batch
// (a single grid is shared), blending `fill` in through an all-ones mask channel.
at::Tensor grid_transform(const at::Tensor& image, at::Tensor grid, InterpolationMode mode, const Fill& fill) {
  auto x = image.dim() == 3 ? image.unsqueeze(0) : image;
  const auto out_dtype = image.scalar_type();
  const bool cast = out_dtype != grid.scalar_type();
  if (cast) x = x.to(grid.scalar_type());
  const int64_t n = x.size(0), c = x.size(1);
  BIRDPLANE_CHECK(grid.size(0) == 1 || grid.size(0) == n, "grid_transform: {} grids for a batch of {}", grid.size(0), n);
  if (n > 1 && grid.size(0) == 1) grid = grid.expand({n, grid.size(1), grid.size(2), grid.size(3)});
  if (fill) x = torch::cat({x, torch::ones({n, 1, x.size(2), x.size(3)}, x.options())}, 1);
  x = at::grid_sampler(x, grid, mode == InterpolationMode::kNearest ? 1 : 0, /*padding_mode=zeros*/ 0,
                       /*align_corners=*/false);
  if (fill) {
    auto mask = x.slice(1, c, c + 1);
    x = x.slice(1, 0, c);
    mask = mask.expand_as(x);
    auto fill_img = torch::tensor(*fill, torch::kFloat64)
                        .to(x.scalar_type())
                        .view({1, static_cast<int64_t>(fill->size()), 1, 1})
                        .expand_as(x);
    if (mode == InterpolationMode::kNearest) {
      x = at::where(mask < 0.5, fill_img, x);
    } else {
      x = x * mask + at::rsub(mask, 1.0) * fill_img;
    }
  }
  if (image.dim() == 3) x = x.squeeze(0);
  if (cast) {
    if (!at::isFloatingType(out_dtype)) x = x.round();
    x = x.to(out_dtype);
  }
  return x;
}

}  // namespace

std::array<double, 6> inverse_affine_matrix(std::array<double, 2> center, double angle,
                                            std::array<double, 2> translate, double scale,
                                            std::array<double, 2> shear) {
  // M = T * C * R * S * Shear * C^-1, inverted: rotation/shear part by its adjugate (det 1), scaled
  // by 1/scale, then the translations undone; the same float64 steps as torchvision.
  const double rot = angle * kDegToRad, sx = shear[0] * kDegToRad, sy = shear[1] * kDegToRad;
  const double cx = center[0], cy = center[1], tx = translate[0], ty = translate[1];
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  std::array<double, 6> m{d, -b, 0.0, -c, a, 0.0};
  for (double& v : m) v = v / scale;
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

namespace {

// Center in pixels -> relative to the image center, as torchvision's tensor path wants it.
std::array<double, 2> relative_center(const std::optional<std::array<double, 2>>& center, int64_t w, int64_t h) {
  if (!center) return {0.0, 0.0};
  return {1.0 * ((*center)[0] - static_cast<double>(w) * 0.5), 1.0 * ((*center)[1] - static_cast<double>(h) * 0.5)};
}

// torchvision's _compute_affine_output_size: the box around the transformed corners, in float32,
// with the 1e-4 truncation it uses; {w, h}.
std::array<int64_t, 2> affine_output_size(const std::array<double, 6>& m, int64_t w, int64_t h) {
  const double hw = 0.5 * static_cast<double>(w), hh = 0.5 * static_cast<double>(h);
  auto pts = torch::tensor({-hw, -hh, 1.0, -hw, hh, 1.0, hw, hh, 1.0, hw, -hh, 1.0}, torch::kFloat64)
                 .to(torch::kFloat32)
                 .view({4, 3});
  auto theta = torch::tensor(std::vector<double>(m.begin(), m.end()), torch::kFloat64).to(torch::kFloat32).view({2, 3});
  auto new_pts = torch::matmul(pts, theta.t());
  auto shift = torch::tensor({hw, hh}, torch::kFloat64).to(torch::kFloat32);
  auto min_vals = std::get<0>(new_pts.min(0)) + shift;
  auto max_vals = std::get<0>(new_pts.max(0)) + shift;
  const double tol = 1e-4;
  auto cmax = torch::ceil((max_vals / tol).trunc_() * tol);
  auto cmin = torch::floor((min_vals / tol).trunc_() * tol);
  auto size = cmax - cmin;
  return {static_cast<int64_t>(size[0].item<float>()), static_cast<int64_t>(size[1].item<float>())};
}

}  // namespace

at::Tensor affine(const at::Tensor& image, double angle, std::array<double, 2> translate, double scale,
                  std::array<double, 2> shear, InterpolationMode interpolation, const Fill& fill,
                  std::optional<std::array<double, 2>> center) {
  check_image(image, "affine");
  check_mode(interpolation, "affine");
  check_fill(fill, image.size(-3), "affine");
  BIRDPLANE_CHECK(scale > 0, "affine: scale must be positive, got {}", scale);
  const int64_t h = image.size(-2), w = image.size(-1);
  const auto m = inverse_affine_matrix(relative_center(center, w, h), angle, translate, scale, shear);
  return grid_transform(image, affine_grid(m, w, h, w, h, grid_dtype(image)), interpolation, fill);
}

at::Tensor rotate(const at::Tensor& image, double angle, InterpolationMode interpolation, bool expand,
                  std::optional<std::array<double, 2>> center, const Fill& fill) {
  check_image(image, "rotate");
  check_mode(interpolation, "rotate");
  check_fill(fill, image.size(-3), "rotate");
  const int64_t h = image.size(-2), w = image.size(-1);
  // torchvision negates the angle: rotate turns counter-clockwise, affine clockwise.
  const auto m = inverse_affine_matrix(relative_center(center, w, h), -angle, {0.0, 0.0}, 1.0, {0.0, 0.0});
  const auto out = expand ? affine_output_size(m, w, h) : std::array<int64_t, 2>{w, h};
  return grid_transform(image, affine_grid(m, w, h, out[0], out[1], grid_dtype(image)), interpolation, fill);
}

std::array<double, 8> perspective_coeffs(const std::array<Point, 4>& startpoints, const std::array<Point, 4>& endpoints) {
  // Rows of the 8x8 system for x' = (c0 x + c1 y + c2) / (c6 x + c7 y + 1) and likewise y', mapping
  // each end point (x, y) to its start point (x', y').
  auto a = torch::zeros({8, 8}, torch::kFloat32);
  auto b = torch::zeros({8}, torch::kFloat32);
  auto A = a.accessor<float, 2>();
  auto B = b.accessor<float, 1>();
  for (int i = 0; i < 4; ++i) {
    const auto& e = endpoints[static_cast<size_t>(i)];
    const auto& s = startpoints[static_cast<size_t>(i)];
    const float row0[8] = {float(e[0]), float(e[1]), 1, 0, 0, 0, float(-s[0] * e[0]), float(-s[0] * e[1])};
    const float row1[8] = {0, 0, 0, float(e[0]), float(e[1]), 1, float(-s[1] * e[0]), float(-s[1] * e[1])};
    for (int j = 0; j < 8; ++j) {
      A[2 * i][j] = row0[j];
      A[2 * i + 1][j] = row1[j];
    }
    B[2 * i] = static_cast<float>(s[0]);
    B[2 * i + 1] = static_cast<float>(s[1]);
  }
  auto solution = std::get<0>(at::linalg_lstsq(a, b, c10::nullopt, c10::string_view("gels")));
  std::array<double, 8> out{};
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = solution[i].item<double>();
  return out;
}

at::Tensor perspective(const at::Tensor& image, const std::array<Point, 4>& startpoints,
                       const std::array<Point, 4>& endpoints, InterpolationMode interpolation, const Fill& fill) {
  check_image(image, "perspective");
  check_mode(interpolation, "perspective");
  check_fill(fill, image.size(-3), "perspective");
  const auto coeffs = perspective_coeffs(startpoints, endpoints);
  return grid_transform(image, perspective_grid(coeffs, image.size(-1), image.size(-2), grid_dtype(image)),
                        interpolation, fill);
}

at::Tensor elastic_transform(const at::Tensor& image, const at::Tensor& displacement, InterpolationMode interpolation,
                             const Fill& fill) {
  check_image(image, "elastic_transform");
  check_mode(interpolation, "elastic_transform");
  check_fill(fill, image.size(-3), "elastic_transform");
  const int64_t h = image.size(-2), w = image.size(-1);
  BIRDPLANE_CHECK(displacement.dim() == 4 && displacement.size(0) == 1 && displacement.size(1) == h &&
                      displacement.size(2) == w && displacement.size(3) == 2,
                  "elastic_transform: displacement must be [1,{},{},2] for a {}x{} image, got [{}]", h, w, h, w,
                  fmt::join(displacement.sizes(), ","));
  return grid_transform(image, identity_grid(h, w) + displacement, interpolation, fill);
}

}  // namespace functional

namespace {

namespace F = functional;

std::string floats_text(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ", ") + python_repr(x);
  return "[" + s + "]";
}

// torchvision's _setup_angle: one number d >= 0 gives [-d, d]; otherwise exactly `sizes` values.
std::vector<double> setup_angle(const std::vector<double>& v, const char* who, const char* name,
                                std::initializer_list<size_t> sizes) {
  if (v.size() == 1) {
    BIRDPLANE_CHECK(v[0] >= 0, "{}: {} is {}; a single number must be 0 or more (the range [-{}, {}])", who, name,
                    v[0], name, name);
    return {-v[0], v[0]};
  }
  bool ok = false;
  for (size_t s : sizes) ok = ok || v.size() == s;
  BIRDPLANE_CHECK(ok, "{}: {} must be one number or {} values, got {}", who, name,
                  sizes.size() == 1 ? "2" : "2 or 4", v.size());
  for (size_t i = 0; i + 1 < v.size(); i += 2)
    BIRDPLANE_CHECK(v[i] <= v[i + 1], "{}: {} ranges must be (min, max) with min <= max, got ({}, {})", who, name,
                    v[i], v[i + 1]);
  return v;
}

// The class's fill made per channel, as torchvision's forward does for tensors.
F::Fill channel_fill(const std::vector<double>& fill, int64_t channels, const char* who) {
  BIRDPLANE_CHECK(fill.size() == 1 || static_cast<int64_t>(fill.size()) == channels,
                  "{}: fill has {} values; give one, or one per channel ({})", who, fill.size(), channels);
  return fill.size() == 1 ? std::vector<double>(static_cast<size_t>(channels), fill[0]) : fill;
}

void check_fill_option(const std::vector<double>& fill, const char* who) {
  BIRDPLANE_CHECK(!fill.empty(), "{}: fill needs at least one value", who);
}

void check_batch(const at::Tensor& input, size_t params, const char* who) {
  check_image(input, who);
  const int64_t n = image_count(input);
  BIRDPLANE_CHECK(static_cast<int64_t>(params) == n, "{}: {} parameter sets for {} image(s)", who, params, n);
}

std::string center_text(const std::optional<std::array<double, 2>>& c) {
  return c ? fmt::format(", center=[{}, {}]", (*c)[0], (*c)[1]) : "";
}

}  // namespace

RandomRotation::RandomRotation(std::vector<double> degrees, F::InterpolationMode interpolation, bool expand,
                               std::optional<std::array<double, 2>> center, std::vector<double> fill,
                               at::Generator* generator)
    : RandomTransform(generator), interpolation_(interpolation), expand_(expand), center_(center),
      fill_(std::move(fill)) {
  auto d = setup_angle(degrees, "RandomRotation", "degrees", {2});
  degrees_ = {d[0], d[1]};
  F::check_mode(interpolation_, "RandomRotation");
  check_fill_option(fill_, "RandomRotation");
}

double RandomRotation::get_params(at::Generator& gen, std::array<double, 2> degrees) {
  return static_cast<double>(uniform(gen, degrees[0], degrees[1]));
}

at::Tensor RandomRotation::apply(const at::Tensor& input, const std::vector<double>& angles) const {
  check_batch(input, angles.size(), "RandomRotation");
  const auto fill = channel_fill(fill_, input.size(-3), "RandomRotation");
  if (input.dim() == 3) return F::rotate(input, angles[0], interpolation_, expand_, center_, fill);
  const int64_t h = input.size(-2), w = input.size(-1);
  const auto dtype = F::grid_dtype(input);
  std::vector<at::Tensor> grids;
  std::array<int64_t, 2> out{w, h};
  for (size_t i = 0; i < angles.size(); ++i) {
    const auto m = F::inverse_affine_matrix(F::relative_center(center_, w, h), -angles[i], {0.0, 0.0}, 1.0, {0.0, 0.0});
    const auto size = expand_ ? F::affine_output_size(m, w, h) : std::array<int64_t, 2>{w, h};
    BIRDPLANE_CHECK(i == 0 || size == out,
                    "RandomRotation: with expand=True the images of a batch come out {}x{} and {}x{}; a batch needs "
                    "one size (rotate them one at a time, or use expand=False)",
                    out[1], out[0], size[1], size[0]);
    out = size;
    grids.push_back(F::affine_grid(m, w, h, size[0], size[1], dtype));
  }
  return F::grid_transform(input, torch::cat(grids, 0), interpolation_, fill);
}

at::Tensor RandomRotation::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, draw_per_image(input, [&] { return get_params(gen, degrees_); }));
}

std::string RandomRotation::repr() const {
  return fmt::format("RandomRotation(degrees=[{}, {}], interpolation={}, expand={}{}, fill={})",
                     python_repr(degrees_[0]), python_repr(degrees_[1]), F::to_string(interpolation_),
                     expand_ ? "True" : "False", center_text(center_), fill_.size() == 1 ? fmt::format("{}", fill_[0]) : floats_text(fill_));
}

RandomAffine::RandomAffine(std::vector<double> degrees, std::vector<double> translate, std::vector<double> scale,
                           std::vector<double> shear, F::InterpolationMode interpolation, std::vector<double> fill,
                           std::optional<std::array<double, 2>> center, at::Generator* generator)
    : RandomTransform(generator), translate_(std::move(translate)), scale_(std::move(scale)),
      interpolation_(interpolation), fill_(std::move(fill)), center_(center) {
  auto d = setup_angle(degrees, "RandomAffine", "degrees", {2});
  degrees_ = {d[0], d[1]};
  if (!translate_.empty()) {
    BIRDPLANE_CHECK(translate_.size() == 2, "RandomAffine: translate must have 2 values (fx, fy), got {}",
                    translate_.size());
    for (double t : translate_)
      BIRDPLANE_CHECK(t >= 0 && t <= 1, "RandomAffine: translate values must be between 0 and 1, got {}", t);
  }
  if (!scale_.empty()) {
    BIRDPLANE_CHECK(scale_.size() == 2, "RandomAffine: scale must have 2 values (min, max), got {}", scale_.size());
    for (double s : scale_) BIRDPLANE_CHECK(s > 0, "RandomAffine: scale values must be positive, got {}", s);
    BIRDPLANE_CHECK(scale_[0] <= scale_[1], "RandomAffine: scale must be (min, max) with min <= max, got ({}, {})",
                    scale_[0], scale_[1]);
  }
  if (!shear.empty()) shear_ = setup_angle(shear, "RandomAffine", "shear", {2, 4});
  F::check_mode(interpolation_, "RandomAffine");
  check_fill_option(fill_, "RandomAffine");
}

RandomAffine::Params RandomAffine::get_params(at::Generator& gen, std::array<double, 2> degrees,
                                              const std::vector<double>& translate, const std::vector<double>& scale,
                                              const std::vector<double>& shear, int64_t width, int64_t height) {
  Params p;
  p.angle = static_cast<double>(uniform(gen, degrees[0], degrees[1]));
  if (!translate.empty()) {
    const double max_dx = translate[0] * static_cast<double>(width);
    const double max_dy = translate[1] * static_cast<double>(height);
    // torchvision's int(round(...)): Python rounds halves to even.
    const float tx = uniform(gen, -max_dx, max_dx);
    const float ty = uniform(gen, -max_dy, max_dy);
    p.translate[0] = F::round_half_even(static_cast<double>(tx));
    p.translate[1] = F::round_half_even(static_cast<double>(ty));
  }
  if (!scale.empty()) p.scale = static_cast<double>(uniform(gen, scale[0], scale[1]));
  if (!shear.empty()) {
    p.shear[0] = static_cast<double>(uniform(gen, shear[0], shear[1]));
    if (shear.size() == 4) p.shear[1] = static_cast<double>(uniform(gen, shear[2], shear[3]));
  }
  return p;
}

at::Tensor RandomAffine::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  check_batch(input, params.size(), "RandomAffine");
  const auto fill = channel_fill(fill_, input.size(-3), "RandomAffine");
  const int64_t h = input.size(-2), w = input.size(-1);
  const auto dtype = F::grid_dtype(input);
  std::vector<at::Tensor> grids;
  for (const auto& p : params) {
    const auto m = F::inverse_affine_matrix(F::relative_center(center_, w, h), p.angle,
                                            {1.0 * static_cast<double>(p.translate[0]), 1.0 * static_cast<double>(p.translate[1])},
                                            p.scale, p.shear);
    grids.push_back(F::affine_grid(m, w, h, w, h, dtype));
  }
  return F::grid_transform(input, torch::cat(grids, 0), interpolation_, fill);
}

at::Tensor RandomAffine::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input, draw_per_image(input, [&] {
                 return get_params(gen, degrees_, translate_, scale_, shear_, input.size(-1), input.size(-2));
               }));
}

std::string RandomAffine::repr() const {
  std::string s = fmt::format("RandomAffine(degrees=[{}, {}]", python_repr(degrees_[0]), python_repr(degrees_[1]));
  if (!translate_.empty()) s += ", translate=" + floats_text(translate_);
  if (!scale_.empty()) s += ", scale=" + floats_text(scale_);
  if (!shear_.empty()) s += ", shear=" + floats_text(shear_);
  if (interpolation_ != F::InterpolationMode::kNearest) s += ", interpolation=" + F::to_string(interpolation_);
  if (!(fill_.size() == 1 && fill_[0] == 0))
    s += ", fill=" + (fill_.size() == 1 ? fmt::format("{}", fill_[0]) : floats_text(fill_));
  return s + center_text(center_) + ")";
}

RandomPerspective::RandomPerspective(double distortion_scale, double p, F::InterpolationMode interpolation,
                                     std::vector<double> fill, at::Generator* generator)
    : RandomTransform(generator), distortion_scale_(distortion_scale), p_(p), interpolation_(interpolation),
      fill_(std::move(fill)) {
  BIRDPLANE_CHECK(distortion_scale >= 0 && distortion_scale <= 1,
                  "RandomPerspective: distortion_scale is {}; it must be between 0 and 1", distortion_scale);
  BIRDPLANE_CHECK(p >= 0 && p <= 1, "RandomPerspective: p is {}; a probability is between 0 and 1", p);
  F::check_mode(interpolation_, "RandomPerspective");
  check_fill_option(fill_, "RandomPerspective");
}

RandomPerspective::Params RandomPerspective::get_params(at::Generator& gen, int64_t width, int64_t height,
                                                        double distortion_scale) {
  const int64_t dx = static_cast<int64_t>(distortion_scale * static_cast<double>(width / 2));
  const int64_t dy = static_cast<int64_t>(distortion_scale * static_cast<double>(height / 2));
  Params p;
  p.apply = true;
  // Draw order as torchvision: top-left, top-right, bottom-right, bottom-left; x before y.
  p.endpoints[0][0] = randint(gen, 0, dx + 1);
  p.endpoints[0][1] = randint(gen, 0, dy + 1);
  p.endpoints[1][0] = randint(gen, width - dx - 1, width);
  p.endpoints[1][1] = randint(gen, 0, dy + 1);
  p.endpoints[2][0] = randint(gen, width - dx - 1, width);
  p.endpoints[2][1] = randint(gen, height - dy - 1, height);
  p.endpoints[3][0] = randint(gen, 0, dx + 1);
  p.endpoints[3][1] = randint(gen, height - dy - 1, height);
  p.startpoints = {F::Point{0, 0}, F::Point{width - 1, 0}, F::Point{width - 1, height - 1}, F::Point{0, height - 1}};
  return p;
}

RandomPerspective::Params RandomPerspective::draw(at::Generator& gen, int64_t width, int64_t height,
                                                  double distortion_scale, double p) {
  if (rand_float(gen) < static_cast<float>(p)) return get_params(gen, width, height, distortion_scale);
  return Params{};
}

at::Tensor RandomPerspective::apply(const at::Tensor& input, const std::vector<Params>& params) const {
  check_batch(input, params.size(), "RandomPerspective");
  const auto fill = channel_fill(fill_, input.size(-3), "RandomPerspective");
  const auto dtype = F::grid_dtype(input);
  std::vector<bool> flags;
  for (const auto& p : params) flags.push_back(p.apply);
  // One grid per chosen image; the images left alone need none.
  auto warp = [&](const at::Tensor& images, const std::vector<int64_t>& chosen) {
    std::vector<at::Tensor> grids;
    for (int64_t i : chosen) {
      const auto& p = params[static_cast<size_t>(i)];
      const auto coeffs = F::perspective_coeffs(p.startpoints, p.endpoints);
      grids.push_back(F::perspective_grid(coeffs, input.size(-1), input.size(-2), dtype));
    }
    return F::grid_transform(images, torch::cat(grids, 0), interpolation_, fill);
  };
  return apply_flagged(input, flags, "RandomPerspective", warp);
}

at::Tensor RandomPerspective::forward(const at::Tensor& input, at::Generator& gen) const {
  return apply(input,
               draw_per_image(input, [&] { return draw(gen, input.size(-1), input.size(-2), distortion_scale_, p_); }));
}

std::string RandomPerspective::repr() const { return fmt::format("RandomPerspective(p={})", p_); }

namespace {

// torchvision's tensor gaussian_blur (functional_tensor.py) for one float32 image batch: separable
// kernels from linspace/exp, multiplied into a 2-D kernel, reflect padding, a grouped conv2d.
// Private to the elastic transform here; functional::gaussian_blur (elsewhere) does the same math.
// torchvision's kernel size for sigma: int(8 sigma + 1), made odd.
int64_t elastic_kernel(double sigma) {
  auto k = static_cast<int64_t>(8 * sigma + 1);
  return k % 2 == 0 ? k + 1 : k;
}

std::array<double, 2> pair(const std::vector<double>& v, const char* name) {
  BIRDPLANE_CHECK(v.size() == 1 || v.size() == 2, "ElasticTransform: {} must be one value or 2 (x, y), got {}", name,
                  v.size());
  return v.size() == 1 ? std::array<double, 2>{v[0], v[0]} : std::array<double, 2>{v[0], v[1]};
}

}  // namespace

ElasticTransform::ElasticTransform(std::vector<double> alpha, std::vector<double> sigma,
                                   F::InterpolationMode interpolation, double fill, at::Generator* generator)
    : RandomTransform(generator), alpha_(pair(alpha, "alpha")), sigma_(pair(sigma, "sigma")),
      interpolation_(interpolation), fill_(fill) {
  for (double a : alpha_) BIRDPLANE_CHECK(a >= 0, "ElasticTransform: alpha must be 0 or more, got {}", a);
  for (double s : sigma_) BIRDPLANE_CHECK(s >= 0, "ElasticTransform: sigma must be 0 or more, got {}", s);
  BIRDPLANE_CHECK((sigma_[0] > 0) == (sigma_[1] > 0),
                  "ElasticTransform: sigma ({}, {}) must be both positive or both 0 (torchvision blurs with both)",
                  sigma_[0], sigma_[1]);
  F::check_mode(interpolation_, "ElasticTransform");
}

at::Tensor ElasticTransform::get_params(at::Generator& gen, std::array<double, 2> alpha, std::array<double, 2> sigma,
                                        int64_t height, int64_t width) {
  auto one = [&](double sigma_k, double alpha_k, int64_t side) {
    auto d = at::rand({1, 1, height, width}, gen) * 2 - 1;
    if (sigma_k > 0.0) {
      const int64_t k = elastic_kernel(sigma_k);
      BIRDPLANE_CHECK(k / 2 < height && k / 2 < width,
                      "ElasticTransform: sigma {} blurs with a {}-pixel kernel, which needs an image larger than "
                      "{}x{} (got {}x{}); use a smaller sigma",
                      sigma_k, k, k / 2, k / 2, height, width);
      d = functional::gaussian_blur(d, {k, k}, sigma);  // torchvision passes both sigmas
    }
    return d * alpha_k / static_cast<double>(side);
  };
  auto dx = one(sigma[0], alpha[0], height);
  auto dy = one(sigma[1], alpha[1], width);
  return torch::cat({dx, dy}, 1).permute({0, 2, 3, 1});
}

at::Tensor ElasticTransform::apply(const at::Tensor& input, const std::vector<at::Tensor>& displacements) const {
  check_batch(input, displacements.size(), "ElasticTransform");
  const int64_t h = input.size(-2), w = input.size(-1);
  for (const auto& d : displacements)
    BIRDPLANE_CHECK(d.dim() == 4 && d.size(0) == 1 && d.size(1) == h && d.size(2) == w && d.size(3) == 2,
                    "ElasticTransform: each displacement must be [1,{},{},2]", h, w);
  auto grid = F::identity_grid(h, w) + torch::cat(displacements, 0);
  return F::grid_transform(input, grid, interpolation_, std::vector<double>{fill_});
}

at::Tensor ElasticTransform::forward(const at::Tensor& input, at::Generator& gen) const {
  check_image(input, "ElasticTransform");
  return apply(input, draw_per_image(input, [&] { return get_params(gen, alpha_, sigma_, input.size(-2), input.size(-1)); }));
}

std::string ElasticTransform::repr() const {
  return fmt::format("ElasticTransform(alpha=[{}, {}], sigma=[{}, {}], interpolation={}, fill={})",
                     python_repr(alpha_[0]), python_repr(alpha_[1]), python_repr(sigma_[0]), python_repr(sigma_[1]),
                     F::to_string(interpolation_), fill_);
}

}  // namespace birdplane::transforms
