#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "store/fs.h"

namespace ds {
namespace {

Status errno_status(const std::string& what, int err) {
  std::string m = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::no_space(m);
  if (err == ENOENT) return Status::not_found(m);
  return Status::io_error(m);
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }

  Status pwrite(const void* data, size_t n, uint64_t off) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_status("write " + path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
      off += static_cast<uint64_t>(w);
    }
    return Status::ok();
  }

  Status pread(void* data, size_t n, uint64_t off, size_t* got) const override {
    char* p = static_cast<char*>(data);
    size_t total = 0;
    while (total < n) {
      ssize_t r = ::pread(fd_, p + total, n - total, static_cast<off_t>(off + total));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno_status("read " + path_, errno);
      }
      if (r == 0) break;
      total += static_cast<size_t>(r);
    }
    *got = total;
    return Status::ok();
  }

  Status datasync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fdatasync " + path_, errno);
    return Status::ok();
  }

  Status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return errno_status("truncate " + path_, errno);
    }
    return Status::ok();
  }

  Status size(uint64_t* out) const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return errno_status("stat " + path_, errno);
    *out = static_cast<uint64_t>(st.st_size);
    return Status::ok();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFs final : public Fs {
 public:
  Status open(const std::string& path, std::unique_ptr<File>* out) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status("open " + path, errno);
    *out = std::make_unique<PosixFile>(fd, path);
    return Status::ok();
  }

  Status open_direct_sync(const std::string& path, std::unique_ptr<File>* out) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT | O_DSYNC, 0644);
    if (fd < 0) {
      // EINVAL: the filesystem has no direct I/O (tmpfs before Linux 6.6, some FUSE mounts).
      if (errno == EINVAL) return Status::unavailable("no direct I/O on the filesystem of " + path);
      return errno_status("open " + path, errno);
    }
    *out = std::make_unique<PosixFile>(fd, path);
    return Status::ok();
  }

  Status create_dirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return errno_status("mkdir " + path, ec.value());
    return Status::ok();
  }

  Status list(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Status::ok();
      return errno_status("opendir " + dir, errno);
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(std::move(n));
    }
    ::closedir(d);
    return Status::ok();
  }

  Status remove_all(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return errno_status("remove " + path, ec.value());
    return Status::ok();
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename " + from, errno);
    return Status::ok();
  }

  bool exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  Status sync_dir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open dir " + path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errno_status("fsync dir " + path, err);
    return Status::ok();
  }
};

}  // namespace

Fs* Fs::posix() {
  static PosixFs fs;
  return &fs;
}

}  // namespace ds
