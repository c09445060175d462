// What LibTorch runs on here: version, BLAS actually loaded, threads, CPU features, CUDA.
#pragma once

#include <string>

namespace birdplane {

/// A snapshot of the runtime environment that decides training speed.
struct Environment {
  std::string torch_version;   ///< e.g. "1.13.1"
  std::string blas_path;       ///< resolved path of the libblas.so.3 loaded in this process
  std::string blas_kind;       ///< "openblas", "reference", "mkl", "blis" or "unknown"
  std::string blas_core;       ///< OpenBLAS's kernel family (openblas_get_corename), "" for other BLAS
  std::string blas_core_env;   ///< $OPENBLAS_CORETYPE as set at startup, "" when unset
  int threads = 0;             ///< at::get_num_threads()
  int cores = 0;               ///< std::thread::hardware_concurrency()
  bool avx2 = false, avx512f = false, avx512_bf16 = false, amx_bf16 = false;
  bool cuda = false;           ///< torch::cuda::is_available()
  int cuda_devices = 0;
};

/// Inspects this process (the BLAS path comes from the loaded shared objects, so it is the one
/// actually in use, not a guess from the alternatives system).
Environment inspect_environment();

/// When OpenBLAS runs kernels older than the CPU supports (its AVX2 "Haswell" or "Zen" kernels on
/// an AVX-512 CPU, as OPENBLAS_CORETYPE=Haswell forces), a note saying so and how to change it;
/// otherwise "". OpenBLAS picks its kernels when it is loaded, so only the environment of the next
/// process can change them.
std::string blas_core_advice(const Environment& env);

/// Human-readable report, one fact a line, with a warning line when reference BLAS is in use.
std::string format_environment(const Environment& env);

}  // namespace birdplane
