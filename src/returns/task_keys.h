// The task's matching keys (Message-ID key, VERP HMAC key), read from or added to the task.
#pragma once

#include "base/result.h"
#include "returns/verp.h"
#include "store/task_store.h"

namespace sb {

// Meta key of the VERP HMAC key: 32 random octets, hex. Created by the first `send` given
// --return-path; a task without it was never sent with VERP, so VERP tokens are not checked.
inline constexpr const char* kVerpKeyMeta = "returns.verp_key";

// Reads "task_key" and the VERP key; with create_verp, a missing VERP key is generated and
// stored (so every later run signs with the same key).
Result<MatchKeys> task_match_keys(TaskStore& store, bool create_verp);

}  // namespace sb
