// contract_os.h on Linux: fork + exec of /proc/self/exe, a raw SEQPACKET
// client, and the fd count from /proc/self/fd.
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "../../native/core/transport.h"
#include "contract_os.h"

namespace contract_os {

const char* const kPlatform = "linux";

int64_t CurrentPid() { return static_cast<int64_t>(::getpid()); }

namespace {

class LinuxChild : public Child {
 public:
  explicit LinuxChild(pid_t pid) : pid_(pid) {}
  ~LinuxChild() override {
    if (!reaped_) {
      Kill();
      WaitExit(60000);
    }
  }
  int64_t pid() const override { return pid_; }
  void Kill() override {
    if (!reaped_) ::kill(pid_, SIGKILL);
  }
  int WaitExit(int timeout_ms) override {
    if (reaped_) return code_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        reaped_ = true;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return code_;
      }
      if (done < 0 || std::chrono::steady_clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
  int code_ = -1;
};

class LinuxRawClient : public RawClient {
 public:
  explicit LinuxRawClient(int fd) : fd_(fd) {}
  ~LinuxRawClient() override { ::close(fd_); }
  bool Send(const std::vector<uint8_t>& bytes) override {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }

 private:
  int fd_;
};

}  // namespace

std::unique_ptr<Child> SpawnSelf(const std::vector<std::string>& args) {
  std::vector<std::string> all = {"transport_contract_test"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) return nullptr;
  if (pid == 0) {
    // memport's fds are all close-on-exec: the child starts with stdio only.
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  return std::make_unique<LinuxChild>(pid);
}

std::unique_ptr<RawClient> RawConnect(const std::string& name) {
  memport::Result<std::string> path = memport::ChannelAddress(name);
  if (!path.ok() || path.value().size() >= sizeof(sockaddr_un{}.sun_path)) return nullptr;
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.value().c_str(), path.value().size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<LinuxRawClient>(fd);
}

// The epoll fd of the backend's I/O thread is left out: it is made once, on
// first use, and kept for the life of the process.
std::string HandleCensus() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "fds=?";
  int count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.' || std::atoi(entry->d_name) == ::dirfd(dir)) continue;
    char target[64] = {};
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0 && std::strcmp(target, "anon_inode:[eventpoll]") == 0) continue;
    ++count;
  }
  ::closedir(dir);
  return "fds=" + std::to_string(count);
}

void PrintLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace contract_os
