#include "handover.h"

#include <utility>

namespace memport {

void ConnectionHandover::Deliver(std::unique_ptr<Connection> connection) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_) {
    lock.unlock();
    connection.reset();  // closes it, outside our lock
    return;
  }
  const uint64_t id = ++next_id_;
  waiting_.emplace(id, std::move(connection));
  js_->Post([self = shared_from_this(), id] { self->HandOver(id); });
}

void ConnectionHandover::Close() {
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    dropped.swap(waiting_);
  }
  // Destroying a connection closes it (and releases its OS object) now.
}

void ConnectionHandover::HandOver(uint64_t id) {
  std::unique_ptr<Connection> connection;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = waiting_.find(id);
    if (found == waiting_.end()) return;  // closed meanwhile
    connection = std::move(found->second);
    waiting_.erase(found);
  }
  observer_->OnConnection(std::move(connection));
}

}  // namespace memport
