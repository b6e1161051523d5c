// durable-sessions: the single binary. See cli/ for the subcommands.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <initializer_list>

#include "cli/cli.h"

namespace {
// On a fatal signal, write a raw backtrace to stderr (the server log) before dying, so a crash
// leaves evidence. Only async-signal-safe calls.
void on_fatal_signal(int sig) {
  void* frames[64];
  int n = backtrace(frames, 64);
  const char msg[] = "durable-sessions: fatal signal, backtrace:\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) signal(sig, on_fatal_signal);
  return ds::run_cli(argc, argv);
}
