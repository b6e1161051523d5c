// `durable-sessions serve`: opens the store, starts the HTTP server, runs until SIGTERM/SIGINT.
#pragma once

#include "cli/serve_options.h"

namespace ds {
int run_serve(const ServeOptions& options);
}
