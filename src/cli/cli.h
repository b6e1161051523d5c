// Command-line entry point: parses argv with CLI11 and runs a subcommand (serve, keys, export).
#pragma once

namespace ds {
int run_cli(int argc, char** argv);
}
