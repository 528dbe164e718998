// Linux: one connection over a SOCK_SEQPACKET Unix socket, regions passed
// as fds with SCM_RIGHTS (unix_connection.cc).
#pragma once

#include <memory>

#include "../core/os_handle.h"
#include "../core/transport.h"

namespace memport {

// A connection over `socket` (connected, non-blocking) to `peer`.
std::unique_ptr<Connection> NewUnixConnection(OsHandle socket, const PeerIdentity& peer, std::shared_ptr<JsThread> js);

}  // namespace memport
