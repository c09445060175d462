#include "birdplane/doctor.h"

#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <fmt/format.h>

#include "birdplane/version.h"
#include "common/text.h"

namespace birdplane {
namespace {

int collect_blas(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (!info->dlpi_name || !*info->dlpi_name) return 0;
  std::string name = info->dlpi_name;
  auto slash = name.find_last_of('/');
  std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
  if (base.rfind("libblas.so", 0) == 0 || base.rfind("libopenblas", 0) == 0 ||
      base.rfind("libmkl_rt", 0) == 0) {
    char resolved[PATH_MAX];
    *out = realpath(name.c_str(), resolved) ? std::string(resolved) : name;
    return base.rfind("libblas.so", 0) == 0 ? 1 : 0;  // libblas.so.3 is the one LibTorch calls
  }
  return 0;
}

std::string classify_blas(const std::string& path) {
  if (path.empty()) return "unknown";
  if (path.find("openblas") != std::string::npos) return "openblas";
  if (path.find("mkl") != std::string::npos) return "mkl";
  if (path.find("blis") != std::string::npos) return "blis";
  if (path.find("atlas") != std::string::npos) return "atlas";
  if (path.find("/blas/") != std::string::npos) return "reference";
  return "unknown";
}

bool cpu_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream ss(line.substr(line.find(':') + 1));
      std::string f;
      while (ss >> f)
        if (f == flag) return true;
      return false;
    }
  }
  return false;
}

// OpenBLAS's name for the kernel family it chose at load time, or "" when the BLAS in this process
// is not OpenBLAS (the symbol is looked up, so nothing links against OpenBLAS itself).
std::string openblas_core() {
  using CoreName = char* (*)();
  auto* fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = fn ? fn() : nullptr;
  return name ? std::string(name) : std::string();
}

}  // namespace

Environment inspect_environment() {
  Environment env;
  env.torch_version = fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
  dl_iterate_phdr(collect_blas, &env.blas_path);
  env.blas_kind = classify_blas(env.blas_path);
  env.blas_core = openblas_core();
  const char* core_env = std::getenv("OPENBLAS_CORETYPE");
  env.blas_core_env = core_env ? core_env : "";
  env.threads = at::get_num_threads();
  env.cores = static_cast<int>(std::thread::hardware_concurrency());
  env.avx2 = cpu_flag("avx2");
  env.avx512f = cpu_flag("avx512f");
  env.avx512_bf16 = cpu_flag("avx512_bf16");
  env.amx_bf16 = cpu_flag("amx_bf16");
  env.cuda = torch::cuda::is_available();
  env.cuda_devices = env.cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  return env;
}

std::string blas_core_advice(const Environment& env) {
  if (!env.avx512f || env.blas_core.empty()) return "";
  const std::string lower = to_lower(env.blas_core);
  // OpenBLAS's x86 families without AVX-512 kernels (Zen 1-3 run the Haswell ones).
  for (const char* old : {"haswell", "zen", "sandybridge", "nehalem", "core2", "prescott", "atom", "barcelona",
                          "bulldozer", "piledriver", "steamroller", "excavator", "penryn", "dunnington"}) {
    if (lower == old) {
      return fmt::format(
          "note: OpenBLAS runs its {} (AVX2 or older) kernels{}, but this CPU has AVX-512.\n"
          "      OPENBLAS_CORETYPE=SKYLAKEX in the environment selects its AVX-512 kernels\n"
          "      (fp32 matrix products about 1.45x faster on the machine of docs/performance.md).\n",
          env.blas_core, env.blas_core_env.empty() ? "" : fmt::format(" (OPENBLAS_CORETYPE={})", env.blas_core_env));
    }
  }
  return "";
}

std::string format_environment(const Environment& env) {
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  std::string s;
  s += fmt::format("birdplane        {}\n", birdplane::version());
  s += fmt::format("libtorch         {}\n", env.torch_version);
  s += fmt::format("blas             {} ({})\n", env.blas_path.empty() ? "(none loaded)" : env.blas_path,
                   env.blas_kind);
  if (!env.blas_core.empty())
    s += fmt::format("blas kernels     {}{}\n", env.blas_core,
                     env.blas_core_env.empty() ? "" : fmt::format(" (OPENBLAS_CORETYPE={})", env.blas_core_env));
  s += fmt::format("threads          {} of {} cores\n", env.threads, env.cores);
  s += fmt::format("cpu              avx2 {}, avx512f {}, avx512_bf16 {}, amx_bf16 {}\n", yes(env.avx2),
                   yes(env.avx512f), yes(env.avx512_bf16), yes(env.amx_bf16));
  s += fmt::format("bf16 matmul      {}\n", env.amx_bf16      ? "AMX (fast, through oneDNN)"
                                          : env.avx512_bf16 ? "AVX512-BF16"
                                                            : "emulated (slow)");
  s += fmt::format("cuda             {}{}\n", yes(env.cuda),
                   env.cuda ? fmt::format(" ({} devices)", env.cuda_devices) : "");
  if (env.blas_kind == "reference") {
    s += "warning: LibTorch is using the reference BLAS, matrix products run about 30 times slower.\n"
         "         Fix: apt-get install libopenblas0-openmp (scripts/setup does it), or\n"
         "         update-alternatives --config libblas.so.3-x86_64-linux-gnu\n";
  }
  s += blas_core_advice(env);
  if (env.threads < env.cores) {
    s += fmt::format("note: {} of {} cores in use\n", env.threads, env.cores);
  }
  return s;
}

}  // namespace birdplane
