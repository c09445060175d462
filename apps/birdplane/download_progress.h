// The download's progress line on stderr, drawn from the library's DownloadProgress reports:
// "cifar-10-binary.tar.gz  41.2 MB / 170.5 MB (24%)  5.3 MB/s  ETA 0:24".
#pragma once

#ifdef BIRDPLANE_WITH_DOWNLOAD
#include "birdplane/data/download.h"

namespace birdplane::cli {

/// Sets options.on_progress to draw the progress line when stderr is a terminal (unless `quiet`), and
/// options.on_note to print notes on stderr.
void attach_download_progress(data::DownloadOptions& options, bool quiet = false);

}  // namespace birdplane::cli
#endif
