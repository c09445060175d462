// birdplane download (placeholder until the downloader lands).
#include "commands.h"
namespace birdplane::cli {
void setup_download(CLI::App& app) { (void)app; }
}  // namespace birdplane::cli
