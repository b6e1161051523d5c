// durable-sessions: the single binary. See cli/ for the subcommands.
#include "cli/cli.h"

int main(int argc, char** argv) { return ds::run_cli(argc, argv); }
