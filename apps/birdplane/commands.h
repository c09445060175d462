// The subcommands of the birdplane program. Each cmd_<name>.cpp holds an options struct,
// setup_<name>(CLI::App&) that declares its flags, and run_<name>(const Options&) that calls the
// library. Only main.cpp catches errors.
#pragma once

#include <CLI/CLI.hpp>

namespace birdplane::cli {

void setup_doctor(CLI::App& app);
void setup_stats(CLI::App& app);
void setup_download(CLI::App& app);
void setup_show(CLI::App& app);
void setup_train(CLI::App& app);
void setup_lr_find(CLI::App& app);
void setup_eval(CLI::App& app);
void setup_predict(CLI::App& app);
void setup_serve(CLI::App& app);
void setup_export(CLI::App& app);
void setup_model(CLI::App& app);
void setup_experiment(CLI::App& app);
void setup_transforms(CLI::App& app);
void setup_report(CLI::App& app);

/// Every subcommand above, in the order --help lists them (main and the command-line fuzz target).
void setup_commands(CLI::App& app);

/// Common flag: --data-dir (empty means $BIRDPLANE_DATA, else ./data).
inline CLI::Option* add_data_dir(CLI::App& cmd, std::string& target) {
  return cmd.add_option("--data-dir", target,
                        "Folder holding cifar-10-batches-bin/ (or that folder itself); default "
                        "$BIRDPLANE_DATA, else ./data");
}

}  // namespace birdplane::cli
