// Worker tokens: a second handle to a region's memory or a notifier's object,
// made by one thread (region.forWorker(), notifier.forWorker()) and adopted by
// another (a worker). The handle waits here, owned by the table, until one
// thread adopts it or it is dropped (the creator's timer, or the creator's
// environment ending). The JavaScript token carries only the id, so cloning it
// (postMessage copies it) can never make two owners: the first adoption takes
// the handle out of the table and every later one finds nothing.
// Process-wide, because the token is adopted on another thread (worker
// environments each have their own AddonData).
#pragma once

#include <cstdint>
#include <functional>
#include <variant>

#include "core/error.h"
#include "core/notifier.h"
#include "core/shared_memory.h"

namespace memport {

using TokenHandle = std::variant<SharedMemory, Notifier>;

// Parks `handle` and returns its token id.
uint64_t ParkToken(TokenHandle handle, const void* creator);

// Takes the handle of token `id` out of the table if `fits` accepts it (an
// error from `fits` leaves the token pending for its rightful adopter).
// NOT_FOUND when there is no such token (adopted, dropped, never made);
// `what` names the token's kind in that message.
Result<TokenHandle> AdoptToken(uint64_t id, const char* what, const std::function<Status(const TokenHandle&)>& fits);

// Closes token `id`'s handle if nobody adopted it; true if one was pending.
bool DropToken(uint64_t id);

// Closes every token `creator` made that nobody adopted (its environment ends).
void DropTokensOf(const void* creator);

}  // namespace memport
