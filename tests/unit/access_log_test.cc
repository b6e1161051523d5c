// api::AccessLog: batched, ordered, whole lines; bounded memory when the output is stuck.
#include "api/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(AccessLogTest, WritesEveryLineWholeAndInOrderFromManyThreads) {
  test::TempDir tmp;
  std::string path = tmp / "access.log";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  {
    AccessLog::Options o;
    o.fd = fd;
    o.flush_bytes = 1024;  // many flushes while the threads write
    AccessLog log(o);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < 5000; ++i) {
          log.write("{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}");
        }
      });
    }
    for (auto& th : threads) th.join();
  }  // the destructor writes what is left
  ::close(fd);
  std::istringstream in(slurp(path));
  std::string line;
  std::vector<int> next(4, 0);
  int lines = 0;
  while (std::getline(in, line)) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(line.c_str(), "{\"t\":%d,\"i\":%d}", &t, &i), 2) << line;
    ASSERT_TRUE(t >= 0 && t < 4);
    EXPECT_EQ(i, next[t]) << "thread " << t << " out of order";
    next[t] = i + 1;
    ++lines;
  }
  EXPECT_EQ(lines, 20000);
}

TEST(AccessLogTest, FlushesWithinTheIntervalWithoutTraffic) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  AccessLog::Options o;
  o.fd = p[1];
  o.flush_interval = std::chrono::milliseconds(20);
  AccessLog log(o);
  log.write("hello");
  char buf[16] = {};
  ssize_t n = ::read(p[0], buf, sizeof buf);  // blocks until the writer thread flushes
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "hello\n");
  ::close(p[0]);
  ::close(p[1]);
}

TEST(AccessLogTest, DropsLinesInsteadOfGrowingWhenTheOutputIsStuck) {
  ::signal(SIGPIPE, SIG_IGN);  // as the server's main() does
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // nobody reads: the writer blocks once the pipe is full
  AccessLog::Options o;
  o.fd = p[1];
  o.max_buffered = 4096;
  o.flush_interval = std::chrono::milliseconds(1);
  {
    AccessLog log(o);
    std::string line(100, 'x');
    for (int i = 0; i < 20000; ++i) log.write(line);  // 2 MB: far more than pipe + buffer
    EXPECT_GT(log.dropped(), 0u);
    ::close(p[0]);  // unblock the writer (EPIPE) so the destructor can finish
  }
  ::close(p[1]);
}

}  // namespace
}  // namespace ds
