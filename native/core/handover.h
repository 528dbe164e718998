// Accepted connections on their way from a listener's I/O thread to the JS
// thread, where the observer takes them. Both backends' listeners hand over
// through one of these, so that after a listener's Close() returns it hands
// nothing over, and every accepted client not handed over yet is closed at
// once: it learns that it was not admitted instead of waiting, and (Windows)
// its pipe instance no longer keeps the name alive, so a Listen right after
// the Close() gets the name.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "transport.h"

namespace memport {

class ConnectionHandover : public std::enable_shared_from_this<ConnectionHandover> {
 public:
  ConnectionHandover(std::shared_ptr<JsThread> js, std::shared_ptr<ListenerObserver> observer)
      : js_(std::move(js)), observer_(std::move(observer)) {}

  // Any thread: posts `connection` to the observer, or closes it if the
  // handover is closed.
  void Deliver(std::unique_ptr<Connection> connection);

  // Closes every connection not handed over yet; later ones are closed as
  // they come. Idempotent.
  void Close();

 private:
  void HandOver(uint64_t id);  // on the JS thread

  const std::shared_ptr<JsThread> js_;
  const std::shared_ptr<ListenerObserver> observer_;
  std::mutex mutex_;
  bool closed_ = false;
  uint64_t next_id_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> waiting_;
};

}  // namespace memport
