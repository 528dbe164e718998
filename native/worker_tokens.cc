#include "worker_tokens.h"

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace memport {
namespace {

struct PendingToken {
  TokenHandle handle;
  const void* creator;  // the creating environment's AddonData
};

struct TokenTable {
  std::mutex mutex;
  std::unordered_map<uint64_t, PendingToken> pending;
  uint64_t next_id = 1;
};

// Never destroyed: a worker may still be ending while the process exits.
TokenTable& Tokens() {
  static TokenTable* table = new TokenTable();
  return *table;
}

}  // namespace

uint64_t ParkToken(TokenHandle handle, const void* creator) {
  TokenTable& table = Tokens();
  std::lock_guard<std::mutex> lock(table.mutex);
  const uint64_t id = table.next_id++;
  table.pending.emplace(id, PendingToken{std::move(handle), creator});
  return id;
}

Result<TokenHandle> AdoptToken(uint64_t id, const char* what, const std::function<Status(const TokenHandle&)>& fits) {
  TokenTable& table = Tokens();
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.pending.find(id);
  if (it == table.pending.end()) {
    return MakeError("NOT_FOUND", std::string("this ") + what + " token was already adopted, was dropped (its timeoutMs "
                                  "passed, or the thread that made it ended), or is not a token; ask the owner for a "
                                  "new forWorker() token");
  }
  Status fit = fits(it->second.handle);
  if (!fit.ok()) return fit.error();
  TokenHandle handle = std::move(it->second.handle);
  table.pending.erase(it);
  return handle;
}

bool DropToken(uint64_t id) {
  std::vector<TokenHandle> dropped;  // closed after the lock is released
  TokenTable& table = Tokens();
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.pending.find(id);
  if (it == table.pending.end()) return false;
  dropped.push_back(std::move(it->second.handle));
  table.pending.erase(it);
  return true;
}

void DropTokensOf(const void* creator) {
  std::vector<TokenHandle> dropped;  // closed after the lock is released
  TokenTable& table = Tokens();
  std::lock_guard<std::mutex> lock(table.mutex);
  for (auto it = table.pending.begin(); it != table.pending.end();) {
    if (it->second.creator == creator) {
      dropped.push_back(std::move(it->second.handle));
      it = table.pending.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace memport
