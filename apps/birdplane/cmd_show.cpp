// birdplane show (placeholder until image output lands).
#include "commands.h"
namespace birdplane::cli {
void setup_show(CLI::App& app) { (void)app; }
}  // namespace birdplane::cli
