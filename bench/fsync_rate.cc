// ds_fsync_rate: the durability ceiling of a filesystem. One thread does
// write(`--bytes` bytes) + fdatasync() in a loop on a scratch file in --dir and reports
// syncs per second and the per-iteration latency distribution.
//
//   ds_fsync_rate --dir DIR [--duration 3] [--bytes 200] [--mode append|overwrite|both]
//
// append:    every write extends the file (like a log segment that is not preallocated), so
//            each fdatasync also commits the new file size (a journal commit on ext4/xfs).
// overwrite: writes go to a preallocated, already-synced 64 MiB region, so fdatasync only
//            flushes data blocks.
// A server answering each append only after its fdatasync cannot exceed the append rate with
// one writer; group commit (one sync for many appends) is how a server gets past it.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "ds_fsync_rate: %s: %s\n", m.c_str(), std::strerror(errno));
  std::exit(2);
}

double pct(const std::vector<uint32_t>& s, double q) {
  if (s.empty()) return 0;
  size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(s.size())));
  r = std::clamp<size_t>(r, 1, s.size());
  return s[r - 1];
}

std::string run(const std::string& dir, const std::string& mode, double duration, size_t bytes) {
  std::string path = dir + "/.ds_fsync_rate.XXXXXX";
  std::vector<char> tmpl(path.begin(), path.end());
  tmpl.push_back('\0');
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) die("mkstemp in " + dir);
  ::unlink(tmpl.data());  // the file lives until close

  const off_t region = 64 << 20;
  if (mode == "overwrite") {
    std::vector<char> zeros(1 << 20, 0);
    for (off_t o = 0; o < region; o += static_cast<off_t>(zeros.size()))
      if (::pwrite(fd, zeros.data(), zeros.size(), o) != static_cast<ssize_t>(zeros.size())) die("pwrite");
    if (::fsync(fd) != 0) die("fsync");
  }

  std::vector<char> buf(bytes, 'x');
  if (bytes) buf.back() = '\n';
  std::vector<uint32_t> lat;
  lat.reserve(1 << 16);
  off_t off = 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  Clock::time_point now = t0;
  uint64_t n = 0;
  while (now < end) {
    auto a = Clock::now();
    if (::pwrite(fd, buf.data(), buf.size(), off) != static_cast<ssize_t>(buf.size())) die("pwrite");
    if (::fdatasync(fd) != 0) die("fdatasync");
    now = Clock::now();
    lat.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - a).count()));
    off += static_cast<off_t>(buf.size());
    if (mode == "overwrite" && off + static_cast<off_t>(buf.size()) > region) off = 0;
    ++n;
  }
  double secs = std::chrono::duration<double>(now - t0).count();
  ::close(fd);
  std::sort(lat.begin(), lat.end());
  char out[512];
  std::snprintf(out, sizeof out,
                "{\"mode\": \"%s\", \"syncs\": %llu, \"seconds\": %.3f, \"syncs_per_s\": %.1f, "
                "\"latency_us\": {\"p50\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}}",
                mode.c_str(), static_cast<unsigned long long>(n), secs, static_cast<double>(n) / secs,
                pct(lat, 0.5), pct(lat, 0.99), pct(lat, 0.999), lat.empty() ? 0.0 : double(lat.back()));
  std::fprintf(stderr, "ds_fsync_rate[%s]: %.0f fdatasync/s, p50 %.0f us, p99 %.0f us\n", mode.c_str(),
               static_cast<double>(n) / secs, pct(lat, 0.5), pct(lat, 0.99));
  return out;
}

std::string fs_type(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    default: {
      char b[32];
      std::snprintf(b, sizeof b, "0x%lx", static_cast<unsigned long>(s.f_type));
      return b;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = ".";
  std::string mode = "both";
  double duration = 3;
  size_t bytes = 200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ds_fsync_rate: missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") dir = next();
    else if (a == "--mode") mode = next();
    else if (a == "--duration") duration = std::atof(next().c_str());
    else if (a == "--bytes") bytes = static_cast<size_t>(std::atol(next().c_str()));
    else {
      std::fprintf(stderr,
                   "usage: ds_fsync_rate --dir DIR [--duration S] [--bytes N] [--mode append|overwrite|both]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  if (mode != "append" && mode != "overwrite" && mode != "both") {
    std::fprintf(stderr, "ds_fsync_rate: bad --mode %s\n", mode.c_str());
    return 2;
  }
  if (duration <= 0) duration = 3;
  std::string results;
  if (mode == "append" || mode == "both") results += run(dir, "append", duration, bytes);
  if (mode == "overwrite" || mode == "both") {
    if (!results.empty()) results += ", ";
    results += run(dir, "overwrite", duration, bytes);
  }
  std::printf("{\"dir\": \"%s\", \"fs_type\": \"%s\", \"write_bytes\": %zu, \"results\": [%s]}\n", dir.c_str(),
              fs_type(dir).c_str(), bytes, results.c_str());
  return 0;
}
