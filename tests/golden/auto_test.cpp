// Automatic augmentation policies against torchvision 0.14 (tests/golden/data/auto.pt, written by
// tools/golden/auto.py): functional::apply_op against torchvision's _apply_op for every (operation,
// bin) pair of the CIFAR10 policy and more; each class seeded like torch.manual_seed(s), image by image,
// against torchvision's outputs and the operations torchvision applied (recorded around _apply_op).
#include <cmath>
#include <functional>
#include <iostream>
#include <memory>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/transforms/autoaugment.h"
#include "support/golden.h"
#include "support/transform_checks.h"

using namespace birdplane;
namespace F = birdplane::transforms::functional;
namespace T = birdplane::transforms;
using fixtures::max_abs_diff;

namespace {

using fixtures::seeded;

// uint8 results: equal, or within `tolerance` levels (bilinear resampling); a difference is printed.
void expect_image(const at::Tensor& got, const at::Tensor& want, int tolerance, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  const double diff = max_abs_diff(got, want);
  EXPECT_LE(diff, tolerance) << what << ": max abs diff " << diff;
  if (diff > 0 && diff <= tolerance) std::cout << "[ note ] " << what << ": within " << diff << " level(s)\n";
}

std::vector<at::Tensor> images(const fixtures::Golden& g) {
  auto u8 = g["u8"];
  return {u8[0], u8[1], g["big"]};
}

// The steps torchvision applied to image i of one run (ops / mags / counts keys).
std::vector<T::AugmentStep> golden_steps(const fixtures::Golden& g, const std::string& key, int64_t image) {
  auto counts = g[key + "_counts"], ops = g[key + "_ops"], mags = g[key + "_mags"];
  int64_t start = 0;
  for (int64_t i = 0; i < image; ++i) start += counts[i].item<int64_t>();
  std::vector<T::AugmentStep> out;
  for (int64_t k = start; k < start + counts[image].item<int64_t>(); ++k)
    out.push_back({static_cast<T::AugmentOp>(ops[k].item<int64_t>()), mags[k].item<double>()});
  return out;
}

void expect_steps(const std::vector<T::AugmentStep>& got, const std::vector<T::AugmentStep>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(T::to_string(got[k].op), T::to_string(want[k].op)) << what << " step " << k;
    EXPECT_EQ(got[k].magnitude, want[k].magnitude) << what << " step " << k;
  }
}

// For one golden run: the class's draws (through `draw`, on its own generator) equal torchvision's
// recorded steps, forward() image by image equals torchvision's outputs, and a batch of the two
// 16x20 images followed by the 32x32 one gives the same.
void check_run(const fixtures::Golden& g, const T::Transform& t, const std::string& key, uint64_t seed, int tolerance,
               const std::function<std::vector<T::AugmentStep>(at::Generator&, const at::Tensor&)>& draw) {
  const auto imgs = images(g);
  auto gen = seeded(seed);
  for (int64_t i = 0; i < 3; ++i)
    expect_steps(draw(gen, imgs[static_cast<size_t>(i)]), golden_steps(g, key, i), key + " draws, image " + std::to_string(i));

  auto single = seeded(seed);
  for (int64_t i = 0; i < 3; ++i)
    expect_image(t.forward(imgs[static_cast<size_t>(i)], single), g[key + "_out" + std::to_string(i)], tolerance,
                 key + " image " + std::to_string(i));

  auto batched = seeded(seed);
  auto batch = t.forward(g["u8"], batched);
  expect_image(batch[0], g[key + "_out0"], tolerance, key + " batch image 0");
  expect_image(batch[1], g[key + "_out1"], tolerance, key + " batch image 1");
  expect_image(t.forward(imgs[2], batched), g[key + "_out2"], tolerance, key + " after the batch");
}

}  // namespace

TEST(GoldenAuto, ApplyOpMatchesTorchvisionPrivateApplyOp) {
  fixtures::Golden g("auto.pt");
  const auto img = g["u8"][0];
  const auto ids = g["op_ids"], mags = g["op_mags"], interp = g["op_interp"], fill = g["op_fill"];
  const auto fill_value = g["op_fill_value"];
  const std::vector<double> fill_vec(fill_value.data_ptr<double>(), fill_value.data_ptr<double>() + 3);
  const auto want = g["op_out"];
  std::set<std::string> seen;
  for (int64_t k = 0; k < ids.size(0); ++k) {
    const auto op = static_cast<T::AugmentOp>(ids[k].item<int64_t>());
    const double m = mags[k].item<double>();
    const bool bilinear = interp[k].item<int64_t>() == 1;
    const auto mode = bilinear ? F::InterpolationMode::kBilinear : F::InterpolationMode::kNearest;
    const F::Fill f = fill[k].item<int64_t>() ? F::Fill(fill_vec) : std::nullopt;
    seen.insert(T::to_string(op));
    expect_image(F::apply_op(img, op, m, mode, f), want[k], bilinear ? 1 : 0,
                 T::to_string(op) + "(" + std::to_string(m) + (bilinear ? ", bilinear" : "") +
                     (f ? ", fill" : "") + ")");
  }
  EXPECT_EQ(seen.size(), 15u);  // every operation, Identity and Invert included
}

TEST(GoldenAuto, AutoAugmentMatchesTorchvisionPerSeed) {
  fixtures::Golden g("auto.pt");
  struct Config {
    std::string key;
    T::AutoAugmentPolicy policy;
    F::InterpolationMode mode;
    std::vector<double> fill;
    std::vector<uint64_t> seeds;
  };
  const std::vector<Config> configs = {
      {"aa_cifar", T::AutoAugmentPolicy::kCifar10, F::InterpolationMode::kNearest, {}, {1, 2, 3, 4, 5, 6}},
      {"aa_cifar_bl", T::AutoAugmentPolicy::kCifar10, F::InterpolationMode::kBilinear, {5, 250, 128}, {7, 8}},
      {"aa_imagenet", T::AutoAugmentPolicy::kImageNet, F::InterpolationMode::kNearest, {}, {9, 10}},
      {"aa_svhn", T::AutoAugmentPolicy::kSvhn, F::InterpolationMode::kNearest, {100}, {11, 12}},
  };
  for (const auto& c : configs) {
    T::AutoAugment t(c.policy, c.mode, c.fill);
    for (auto seed : c.seeds)
      check_run(g, t, c.key + "_s" + std::to_string(seed), seed, c.mode == F::InterpolationMode::kBilinear,
                [&](at::Generator& gen, const at::Tensor& x) {
                  return t.steps(T::AutoAugment::get_params(gen, t.num_subpolicies()), x.size(-2), x.size(-1));
                });
  }
}

TEST(GoldenAuto, CifarPolicyTableCoversEveryEntryOverManySeeds) {
  // Not against torchvision: a sanity check that the 25 sub-policies all get picked.
  T::AutoAugment t(T::AutoAugmentPolicy::kCifar10);
  auto gen = seeded(0);
  std::set<int64_t> ids;
  for (int i = 0; i < 500; ++i) ids.insert(T::AutoAugment::get_params(gen, t.num_subpolicies()).policy_id);
  EXPECT_EQ(ids.size(), 25u);
}

TEST(GoldenAuto, RandAugmentMatchesTorchvisionPerSeed) {
  fixtures::Golden g("auto.pt");
  T::RandAugment plain;
  for (uint64_t seed : {20, 21, 22})
    check_run(g, plain, "ra_s" + std::to_string(seed), seed, 0, [](at::Generator& gen, const at::Tensor& x) {
      return T::RandAugment::get_params(gen, 2, 9, 31, x.size(-2), x.size(-1));
    });
  T::RandAugment custom(3, 25, 31, F::InterpolationMode::kBilinear, {9, 99, 199});
  check_run(g, custom, "ra_custom_s23", 23, 1, [](at::Generator& gen, const at::Tensor& x) {
    return T::RandAugment::get_params(gen, 3, 25, 31, x.size(-2), x.size(-1));
  });
}

TEST(GoldenAuto, TrivialAugmentWideMatchesTorchvisionPerSeed) {
  fixtures::Golden g("auto.pt");
  T::TrivialAugmentWide plain;
  for (uint64_t seed : {30, 31, 32})
    check_run(g, plain, "ta_s" + std::to_string(seed), seed, 0, [](at::Generator& gen, const at::Tensor&) {
      return std::vector<T::AugmentStep>{T::TrivialAugmentWide::get_params(gen, 31)};
    });
  T::TrivialAugmentWide bilinear(11, F::InterpolationMode::kBilinear);
  check_run(g, bilinear, "ta_bl_s33", 33, 1, [](at::Generator& gen, const at::Tensor&) {
    return std::vector<T::AugmentStep>{T::TrivialAugmentWide::get_params(gen, 11)};
  });
}

TEST(GoldenAuto, AugMixMatchesTorchvisionPerSeedIncludingDirichletDraws) {
  fixtures::Golden g("auto.pt");
  struct Config {
    std::string key;
    int64_t severity, width, depth;
    double alpha;
    bool all_ops;
    F::InterpolationMode mode;
    std::vector<uint64_t> seeds;
  };
  const std::vector<Config> configs = {
      {"am", 3, 3, -1, 1.0, true, F::InterpolationMode::kBilinear, {40, 41}},
      {"am_custom", 7, 2, 2, 0.5, false, F::InterpolationMode::kNearest, {42}},
  };
  for (const auto& c : configs) {
    T::AugMix t(c.severity, c.width, c.depth, c.alpha, c.all_ops, c.mode);
    for (auto seed : c.seeds) {
      const std::string key = c.key + "_s" + std::to_string(seed);
      std::vector<at::Tensor> dirichlet;
      check_run(g, t, key, seed, c.mode == F::InterpolationMode::kBilinear, [&](at::Generator& gen, const at::Tensor& x) {
        auto p = T::AugMix::get_params(gen, c.severity, c.width, c.depth, c.alpha, c.all_ops, x.size(-2), x.size(-1));
        // torchvision's second draw is the raw Dirichlet sample; weights = sample * m[1].
        dirichlet.push_back(p.m);
        dirichlet.push_back(p.weights);
        std::vector<T::AugmentStep> flat;
        for (const auto& chain : p.chains) flat.insert(flat.end(), chain.begin(), chain.end());
        return flat;
      });
      // m equals torchvision's first sample exactly; the weights equal its second sample times m[1].
      const auto want = g[key + "_dirichlet"];
      int64_t at_k = 0;
      for (size_t i = 0; i < dirichlet.size(); i += 2) {
        auto m = dirichlet[i], w = dirichlet[i + 1];
        auto want_m = want.slice(0, at_k, at_k + 2);
        auto want_w = want.slice(0, at_k + 2, at_k + 2 + c.width) * want_m[1];
        at_k += 2 + c.width;
        EXPECT_TRUE(torch::equal(m, want_m)) << key << ": m " << m << " vs " << want_m;
        EXPECT_TRUE(torch::equal(w, want_w)) << key << ": weights " << w << " vs " << want_w;
      }
      EXPECT_EQ(at_k, want.numel()) << key;
    }
  }
}
