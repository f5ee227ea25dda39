// The settlement ledger and its tokens.
#include "engine/ledger.h"

#include <cstdio>
#include <cstdlib>

namespace sb {

const char* settle_name(Settle s) {
  static constexpr const char* kNames[] = {"sent", "failed", "deferred", "suppressed", "released"};
  static_assert(sizeof kNames / sizeof kNames[0] == kSettleKinds);
  return kNames[static_cast<int>(s)];
}

Obligation& Obligation::operator=(Obligation&& o) noexcept {
  if (this != &o) {
    if (open() && Ledger::default_strict()) {
      std::fprintf(stderr, "smtpblast: BUG: recipient %lld dropped unsettled\n",
                   static_cast<long long>(id_));
      std::abort();
    }
    id_ = o.id_;
    o.id_ = kNone;
  }
  return *this;
}

Obligation::~Obligation() {
  if (open() && Ledger::default_strict()) {
    std::fprintf(stderr, "smtpblast: BUG: recipient %lld dropped unsettled\n",
                 static_cast<long long>(id_));
    std::abort();
  }
}

bool Ledger::default_strict() {
#ifndef NDEBUG
  return true;
#else
  static const bool strict = std::getenv("SMTPBLAST_LEDGER_STRICT") != nullptr;
  return strict;
#endif
}

Ledger::Ledger(bool strict) : strict_(strict) {}

void Ledger::claim(int64_t id, std::string_view email) {
  if (id < 0 || !open_.insert(id)) {
    violation("recipient " + std::to_string(id) +
              (id < 0 ? " claimed with a negative id" : " claimed twice in one run"));
    return;
  }
  // The address only names a violation: kept when a violation aborts (debug and tests), not
  // paid for per recipient otherwise.
  if (strict_) {
    emails_.insert_or_assign(id, std::string(email));
    closed_.erase(id);
  }
  ++claimed_;
}

bool Ledger::settle(int64_t id, Settle how) {
  if (id < 0 || !open_.erase(id)) {
    bool twice = strict_ && closed_.count(id) != 0;
    violation("recipient " + std::to_string(id) +
              (twice ? " settled twice (again as " : " settled (as ") + settle_name(how) + ")" +
              (twice ? "" : " but never claimed in this run"));
    return false;
  }
  if (strict_) {
    emails_.erase(id);
    closed_.insert(id);
  }
  ++settled_[static_cast<int>(how)];
  return true;
}

uint64_t Ledger::settled_total() const {
  uint64_t n = 0;
  for (uint64_t s : settled_) n += s;
  return n;
}

size_t Ledger::close_run() {
  size_t n = open_.size();
  open_.for_each([this](int64_t id) {
    auto it = emails_.find(id);
    std::string email = it == emails_.end() ? std::string() : it->second;
    violation("recipient " + std::to_string(id) + (email.empty() ? "" : " <" + email + ">") +
              " claimed but never settled by the end of the run");
  });
  open_.clear();
  emails_.clear();
  return n;
}

void Ledger::violation(const std::string& what) {
  ++violations_;
  if (strict_) {
    std::fprintf(stderr, "smtpblast: BUG: ledger: %s\n", what.c_str());
    std::abort();
  }
  // Release builds: the store stays the record of truth (a recipient left in flight is
  // claimable by the next run); say so once, not per recipient.
  if (violations_ == 1)
    std::fprintf(stderr, "smtpblast: internal error: ledger: %s\n", what.c_str());
}

}  // namespace sb
