// birdplane: train image classifiers from C++ on LibTorch, after chapter 7 of "Deep Learning with
// PyTorch". This umbrella header brings in the whole installed API; docs/api.md describes it.
#pragma once

#include "birdplane/check.h"
#include "birdplane/threads.h"
#include "birdplane/version.h"

#include "birdplane/data/batch_loader.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/image_io.h"
#include "birdplane/data/image_set.h"
#include "birdplane/data/stats.h"

#include "birdplane/transforms/batch.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/spec.h"
#include "birdplane/transforms/transforms.h"

#include "birdplane/nn/losses.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/model.h"

#include "birdplane/train/checkpoint.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/settings.h"
#include "birdplane/train/trainer.h"
