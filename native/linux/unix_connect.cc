// Linux: connect()'s OS steps (native/core/connect.h drives them): reach the
// listener's socket in the private directory, retrying while its backlog is
// full, then the checks on the process serving it.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "../core/connect.h"
#include "socket_security.h"
#include "unix_connection.h"

namespace memport {

namespace {

// A listener reached: the socket is connected, nothing was sent or read.
class UnixReached : public ReachedListener {
 public:
  UnixReached(OsHandle socket, PeerIdentity peer, int dir_fd, std::string lock_base, std::string name)
      : socket_(std::move(socket)), peer_(peer), dir_fd_(dir_fd), lock_base_(std::move(lock_base)), name_(std::move(name)) {}

  const PeerIdentity& server() const override { return peer_; }

  Status CheckOwnsName() override { return CheckListenerOwnsName(dir_fd_, lock_base_, name_, peer_.pid); }

  // The directory is private, so only we (or root) can have bound there;
  // the kernel's word is checked anyway before trusting the peer with anything.
  Status CheckUser() override {
    if (peer_.uid == static_cast<int64_t>(::geteuid()) || peer_.uid == 0) return Ok();
    return MakeError("ACCESS_DENIED", "the listener runs as another user");
  }

  Status CheckStillServing() override {
    if (PeerProcessState(static_cast<int>(socket_.get())) != PeerProcess::kExited) return Ok();
    return MakeError("PEER_CLOSED", "the listener (process " + std::to_string(peer_.pid) + ") exited while connecting");
  }

  Result<std::unique_ptr<Connection>> Open(std::shared_ptr<JsThread> js) override {
    return NewUnixConnection(std::move(socket_), peer_, std::move(js));
  }

 private:
  OsHandle socket_;
  PeerIdentity peer_;
  int dir_fd_;  // owned by the UnixConnectSteps, which outlive this
  std::string lock_base_;
  std::string name_;
};

class UnixConnectSteps : public ConnectSteps {
 public:
  UnixConnectSteps(OsHandle dir_fd, sockaddr_un address, std::string base, std::string name)
      : dir_fd_(std::move(dir_fd)), address_(address), base_(std::move(base)), name_(std::move(name)) {}

  Result<Reach> TryOnce() override {
    OsHandle socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket.valid()) return LastOsError("socket", "creating a socket");
    Reach reach;
    if (::connect(static_cast<int>(socket.get()), reinterpret_cast<const sockaddr*>(&address_), sizeof address_) == 0) {
      Result<PeerIdentity> peer = PeerCredentials(static_cast<int>(socket.get()));
      if (!peer.ok()) return peer.error();
      reach.reached = std::make_unique<UnixReached>(std::move(socket), peer.value(), static_cast<int>(dir_fd_.get()),
                                                    base_ + ".lock", name_);
      return reach;
    }
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      reach.absent = true;
    } else if (err == EAGAIN || err == EINTR) {
      reach.busy = true;  // the listener's backlog is full
    } else {
      return OsError(err, "connect", "connecting to '" + name_ + "'");
    }
    return reach;
  }

  void WaitWhileBusy(std::chrono::milliseconds left) override {
    std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(2)));
  }

 private:
  OsHandle dir_fd_;
  sockaddr_un address_;
  std::string base_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<ConnectSteps>> BeginConnect(const std::string& name) {
  Result<std::string> path = ChannelAddress(name);
  if (!path.ok()) return path.error();
  const std::string dir = SocketDirectory();
  Result<OsHandle> dir_fd = OpenPrivateDirectory(dir, /*create=*/false);
  if (!dir_fd.ok()) return dir_fd.error();
  const std::string base = CanonicalChannelName(name);
  Result<sockaddr_un> address = SocketAddress(static_cast<int>(dir_fd.value().get()), dir, base + ".sock");
  if (!address.ok()) return address.error();
  return std::unique_ptr<ConnectSteps>(new UnixConnectSteps(dir_fd.take(), address.value(), base, name));
}

}  // namespace memport
