// libFuzzer target: what `train --resume` reads back from a run folder. Each input is tried both as
// the "train" object of config.json (RunSpec::from_json, then validate, as Run::resume does) and as
// metrics.csv (read_metrics). from_json may only throw nlohmann::json::exception or birdplane::Error
// (cmd_train turns both into "not a valid birdplane config"); a config it accepts must survive
// to_json -> from_json unchanged. read_metrics may only throw birdplane::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "birdplane/check.h"
#include "birdplane/train/trainer.h"
#include "fuzz_util.h"

namespace bt = birdplane::train;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  // BIRDPLANE_FUZZ_WRITE_SEED=FILE: writes a default config's "train" object (the committed seed).
  if (const char* out = std::getenv("BIRDPLANE_FUZZ_WRITE_SEED"); out && *out) {
    const std::string text = bt::RunSpec().to_json().dump(1);
    birdplane::fuzz::write_file(out, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  bool parsed = true;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    parsed = false;  // RunDir::read_config reports it as damaged
  }
  if (parsed) {
    try {
      const bt::RunSpec config = bt::RunSpec::from_json(j);
      config.validate();
      const nlohmann::json once = config.to_json();
      const nlohmann::json twice = bt::RunSpec::from_json(once).to_json();
      if (once != twice) __builtin_trap();
    } catch (const nlohmann::json::exception&) {
    } catch (const birdplane::Error&) {
    }
  }
  const auto path = birdplane::fuzz::scratch_dir() / "metrics.csv";
  birdplane::fuzz::write_file(path, data, size);
  try {
    const auto rows = bt::read_metrics(path.string());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].epoch != static_cast<int64_t>(i) + 1) __builtin_trap();
    }
  } catch (const birdplane::Error&) {
  }
  return 0;
}
