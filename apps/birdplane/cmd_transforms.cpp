// birdplane transforms: the transform names --augment and pipeline specs accept, or a spec checked.
#include <iostream>

#include "birdplane/transforms/spec.h"
#include "commands.h"

namespace birdplane::cli {

void setup_transforms(CLI::App& app) {
  auto check = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("transforms", "List the transforms a spec (--augment) may use, or check one");
  cmd->add_option("--check", *check, "Parse this spec and print the pipeline it gives");
  cmd->callback([check] {
    if (!check->empty()) {
      std::cout << transforms::parse_transforms(*check, "--check")->repr() << "\n";
      return;
    }
    for (const auto& usage : transforms::known_transforms()) std::cout << usage << "\n";
  });
}

}  // namespace birdplane::cli
