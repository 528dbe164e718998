// Windows: one connection over a message-mode named pipe; section handles
// travel by DuplicateHandle into the peer (pipe_connection.cc).
#pragma once

#include <memory>

#include "../core/os_handle.h"
#include "../core/transport.h"

namespace memport {

// A connection over `pipe` (associated with the I/O service) to `peer`, whose
// process `peer_process` (PROCESS_DUP_HANDLE) is kept for the connection.
std::unique_ptr<Connection> NewPipeConnection(OsHandle pipe, OsHandle peer_process, const PeerIdentity& peer,
                                              std::shared_ptr<JsThread> js);

}  // namespace memport
