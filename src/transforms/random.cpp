#include "birdplane/transforms/random.h"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::transforms {

at::Generator& generator_or_default(at::Generator* gen) {
  static thread_local at::Generator fallback = at::detail::getDefaultCPUGenerator();
  return gen ? *gen : fallback;
}

int64_t randint(at::Generator& gen, int64_t low, int64_t high) {
  BIRDPLANE_CHECK(high > low, "randint: empty range [{}, {})", low, high);
  // The distribution object LibTorch's CPU random_ kernel uses, without a tensor per draw.
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto* g = at::check_generator<at::CPUGeneratorImpl>(gen);
  at::uniform_int_from_to_distribution<int64_t> dist(static_cast<uint64_t>(high - low), low);
  return dist(g);
}

float uniform(at::Generator& gen, double low, double high) {
  // LibTorch's own kernel on a one-element tensor: its vectorised build fuses the multiply and add of
  // x * (high - low) + low, so computing it here could differ from torchvision's draw in the last bit.
  return at::empty({1}, at::kFloat).uniform_(low, high, gen).item<float>();
}

float rand_float(at::Generator& gen) {
  // [0, 1) needs no scaling, so the distribution object gives torch.rand(1)'s value bit for bit,
  // without a tensor per draw (flips draw once per image).
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto* g = at::check_generator<at::CPUGeneratorImpl>(gen);
  at::uniform_real_distribution<float> dist(0.0f, 1.0f);
  return static_cast<float>(dist(g));
}

std::vector<int64_t> randperm(at::Generator& gen, int64_t n) {
  auto perm = torch::randperm(n, gen, torch::kInt64);
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
}

}  // namespace birdplane::transforms
