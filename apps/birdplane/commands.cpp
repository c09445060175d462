#include "commands.h"

namespace birdplane::cli {

void setup_commands(CLI::App& app) {
  setup_doctor(app);
  setup_stats(app);
  setup_download(app);
  setup_show(app);
  setup_train(app);
  setup_lr_find(app);
  setup_eval(app);
  setup_predict(app);
  setup_serve(app);
  setup_export(app);
  setup_model(app);
  setup_experiment(app);
  setup_transforms(app);
  setup_report(app);
}

}  // namespace birdplane::cli
