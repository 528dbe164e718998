// connect(), once for both backends (native/core/connect.cc): where the work
// runs, how the deadline and a busy listener are handled, which checks the
// listener must pass and in what order, and what each failure says. A backend
// supplies only the OS steps, through BeginConnect.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "error.h"
#include "transport.h"

namespace memport {

// The listener's end as a backend reached it: nothing sent or asked of it yet.
class ReachedListener {
 public:
  virtual ~ReachedListener() = default;
  // The process serving it, as the kernel reports it.
  virtual const PeerIdentity& server() const = 0;
  // Refuses a process that serves the name without owning it (Linux: the
  // name's lock holder; Windows: the owner file's PID).
  virtual Status CheckOwnsName() = 0;
  // Refuses a listener that runs as another user.
  virtual Status CheckUser() = 0;
  // Refuses a listener that is no longer running (its PID may by now be
  // another's) or no longer connected; PEER_CLOSED.
  virtual Status CheckStillServing() = 0;
  // Makes the connection (message mode, I/O registration, whatever the
  // backend keeps for the peer).
  virtual Result<std::unique_ptr<Connection>> Open(std::shared_ptr<JsThread> js) = 0;
};

// One attempt to reach the listener.
struct Reach {
  std::unique_ptr<ReachedListener> reached;  // set when reached
  bool busy = false;    // it exists but takes no client now (backlog full, every instance taken)
  bool absent = false;  // nobody listens under the name
};

// The OS steps of one connect(), made on the connect's own thread.
class ConnectSteps {
 public:
  virtual ~ConnectSteps() = default;
  virtual Result<Reach> TryOnce() = 0;
  // Waits while the listener is busy, at most `left` (and at least a moment).
  virtual void WaitWhileBusy(std::chrono::milliseconds left) = 0;
};

// Backend: prepares to connect to `name` (Linux: opens the private socket
// directory; NOT_FOUND if there is none).
Result<std::unique_ptr<ConnectSteps>> BeginConnect(const std::string& name);

// OS: runs `task` on a detached thread of its own (os_linux.cc, os_win.cc).
Status StartDetachedThread(std::function<void()> task);

}  // namespace memport
