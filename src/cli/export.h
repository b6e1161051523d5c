// `durable-sessions export`: downloads one session as NDJSON from a running server's
// GET /v1/sessions/{id}/export endpoint.
#pragma once

#include <string>

namespace ds {

struct ExportOptions {
  std::string url = "http://127.0.0.1:4437";  // server base URL
  std::string key;                            // API key (empty = open server)
  std::string session_id;
  std::string output;                         // file path; empty or "-" = stdout
};

// Streams the export to the output; the file is written whole (temp file + rename) or not at all.
// Returns a process exit code (0 ok, 1 failure) and prints the reason on stderr.
int run_export(const ExportOptions& options);

}  // namespace ds
