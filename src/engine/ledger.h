// Ledger: every recipient claimed in a run is an obligation, settled exactly once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/id_set.h"

namespace sb {

// How an obligation ended for this run. Deferred is final for the run (no attempt left, or the
// run stopped); a deferral that will be retried settles nothing.
enum class Settle : uint8_t { kSent, kFailed, kDeferred, kSuppressed, kReleased };
inline constexpr int kSettleKinds = 5;
const char* settle_name(Settle s);

// One claimed recipient on its way through a worker: carried by the Job (and by a hand-over to
// another worker), and consumed exactly once when the recipient settles. Move-only, so a copy
// cannot settle twice; a token destroyed while open is a lost recipient.
class Obligation {
 public:
  Obligation() = default;
  explicit Obligation(int64_t id) : id_(id) {}
  Obligation(Obligation&& o) noexcept : id_(o.id_) { o.id_ = kNone; }
  Obligation& operator=(Obligation&& o) noexcept;
  Obligation(const Obligation&) = delete;
  Obligation& operator=(const Obligation&) = delete;
  ~Obligation();

  bool open() const { return id_ != kNone; }
  int64_t id() const { return id_; }
  // Closes the token; the id goes to the ledger (through the worker's report).
  int64_t consume() {
    int64_t id = id_;
    id_ = kNone;
    return id;
  }

 private:
  static constexpr int64_t kNone = -1;
  int64_t id_ = kNone;
};

// What a worker reports when a recipient leaves it for good.
struct Settlement {
  int64_t id = 0;
  Settle how = Settle::kReleased;
};

// Owned by the coordinator (one thread): claim() when the store hands a recipient out,
// settle() when its settlement arrives. The run is over when nothing can be claimed any more
// and the ledger is empty. A strict ledger (debug and test builds, or SMTPBLAST_LEDGER_STRICT
// in the environment) aborts on a violation naming the recipient; otherwise it counts and
// logs it to stderr once per kind, and the run goes on.
class Ledger {
 public:
  explicit Ledger(bool strict = default_strict());
  static bool default_strict();

  void claim(int64_t id, std::string_view email);
  // False when `id` is not open: never claimed, or settled before (a violation).
  bool settle(int64_t id, Settle how);
  bool empty() const { return open_.empty(); }
  size_t open_count() const { return open_.size(); }
  bool is_open(int64_t id) const { return open_.contains(id); }
  // The end of the run: every obligation still open is a violation. Returns how many.
  size_t close_run();

  uint64_t claimed() const { return claimed_; }
  uint64_t settled(Settle how) const { return settled_[static_cast<int>(how)]; }
  uint64_t settled_total() const;
  uint64_t violations() const { return violations_; }

 private:
  void violation(const std::string& what);

  bool strict_;
  IdSet open_;
  std::unordered_map<int64_t, std::string> emails_;  // strict only: names a violation's recipient
  std::unordered_set<int64_t> closed_;  // strict only: tells "settled twice" from "never claimed"
  uint64_t claimed_ = 0;
  uint64_t settled_[kSettleKinds] = {};
  uint64_t violations_ = 0;
};

}  // namespace sb
