// Linux: the one epoll thread per process that waits for every listening
// socket, and for connections where the binding cannot watch fds on the JS
// thread. What it sees is passed on as neutral Readiness bits.
#pragma once

#include <errno.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "../core/transport.h"

namespace memport {

// ---------------------------------------------------------------------------
// The epoll thread.

class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void OnEvents(uint32_t ready) = 0;  // on the I/O thread; Readiness bits
};

// epoll's event bits as the neutral Readiness bits the connection reads.
inline uint32_t FromEpoll(uint32_t events) {
  return ((events & EPOLLIN) ? kReadable : 0u) | ((events & EPOLLOUT) ? kWritable : 0u) |
         ((events & (EPOLLHUP | EPOLLRDHUP)) ? kHungUp : 0u) | ((events & EPOLLERR) ? kFailed : 0u);
}

class IoThread {
 public:
  static IoThread& Get() {
    static IoThread* instance = new IoThread();  // lives for the process; never joined at exit
    return *instance;
  }

  Status Add(int fd, uint32_t events, std::shared_ptr<Pollable> target) {
    const uint64_t key = next_key_++;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      targets_[key] = {fd, std::move(target)};
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      Error e = LastOsError("epoll_ctl", "watching a socket");
      std::lock_guard<std::mutex> lock(mutex_);
      targets_.erase(key);
      return e;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    keys_[fd] = key;
    return Ok();
  }

  void Modify(int fd, uint32_t events) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = it->second;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
  }

  // Stops watching `fd` for `delay`, then watches it for `events` again (if it
  // is still registered by then). Called on the I/O thread. For a condition that level-triggered epoll
  // would report in a tight loop, such as a backlog no fd is free to accept.
  void PauseThenWatch(int fd, uint32_t events, std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    epoll_event ev{};
    ev.data.u64 = it->second;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
    paused_.push_back({std::chrono::steady_clock::now() + delay, it->second, events});
  }

  // After Remove returns, no new event for `fd` is dispatched; one already
  // being dispatched may still finish (targets guard with their own state).
  void Remove(int fd) {
    std::shared_ptr<Pollable> dropped;  // destroyed outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    auto target = targets_.find(it->second);
    if (target != targets_.end()) {
      dropped = std::move(target->second.second);
      targets_.erase(target);
    }
    keys_.erase(it);
  }

 private:
  IoThread() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    std::thread([this] { Run(); }).detach();
  }

  void Run() {
    epoll_event events[64];
    for (;;) {
      const int n = ::epoll_wait(epoll_.get(), events, 64, ResumePaused());
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < n; ++i) {
        std::shared_ptr<Pollable> target;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          auto it = targets_.find(events[i].data.u64);
          if (it != targets_.end()) target = it->second.second;
        }
        if (target) target->OnEvents(FromEpoll(events[i].events));
      }
    }
  }

  // Re-arms every paused target whose time has come (keyed by registration,
  // so an fd number reused since is never re-armed by mistake); returns the
  // epoll_wait timeout until the next one, or -1.
  int ResumePaused() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    int timeout = -1;
    for (size_t i = 0; i < paused_.size();) {
      const Paused& p = paused_[i];
      if (p.until <= now) {
        auto target = targets_.find(p.key);
        if (target != targets_.end()) {
          epoll_event ev{};
          ev.events = p.events;
          ev.data.u64 = p.key;
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, target->second.first, &ev);
        }
        paused_[i] = paused_.back();
        paused_.pop_back();
        continue;
      }
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(p.until - now).count();
      if (timeout < 0 || ms < timeout) timeout = static_cast<int>(ms);
      ++i;
    }
    return timeout;
  }

  struct Paused {
    std::chrono::steady_clock::time_point until;
    uint64_t key;
    uint32_t events;
  };

  OsHandle epoll_;
  std::vector<Paused> paused_;
  std::atomic<uint64_t> next_key_{1};
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::pair<int, std::shared_ptr<Pollable>>> targets_;
  std::unordered_map<int, uint64_t> keys_;
};

}  // namespace memport
