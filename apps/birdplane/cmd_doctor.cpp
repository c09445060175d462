// birdplane doctor: what LibTorch runs on here.
#include <iostream>

#include "birdplane/doctor.h"
#include "commands.h"

namespace birdplane::cli {

void setup_doctor(CLI::App& app) {
  auto* cmd = app.add_subcommand("doctor", "Show the LibTorch version, the BLAS library in use, "
                                           "threads, CPU features (AVX-512, AMX) and CUDA");
  cmd->callback([] {
    const auto env = inspect_environment();
    std::cout << format_environment(env);
    if (env.threads < env.cores) std::cout << "      (--threads sets the threads)\n";
  });
}

}  // namespace birdplane::cli
