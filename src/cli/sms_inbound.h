// SmsInbound: what comes back from an SMSC (delivery receipts, STOP replies) applied to a task.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "sms/smpp_pdu.h"
#include "store/task_store.h"

namespace sb {

struct SmsInboundCounts {
  uint64_t receipts = 0;       // receipts received
  uint64_t delivered = 0;      // recipients settled delivered by one of them
  uint64_t undeliverable = 0;  // ... undeliverable
  uint64_t expired = 0;        // ... expired
  uint64_t recorded = 0;       // a part's state recorded, the recipient not settled (yet)
  uint64_t duplicates = 0;     // the part had that state already
  uint64_t unknown_ids = 0;    // no part of this task has that id
  uint64_t stops = 0;          // STOP replies
  uint64_t stop_numbers = 0;   // numbers newly on the task's suppression list
  uint64_t suppressed = 0;     // unsent recipients suppressed by them
  uint64_t other_replies = 0;  // mobile-originated messages that are not an opt-out
  uint64_t bad_numbers = 0;    // a STOP from an address that is no phone number
  uint64_t store_errors = 0;
};

// Applies receipts and replies to the task as they come, on the thread that owns the task
// store (each in a transaction of its own; a SQLite file or a PostgreSQL task). `country`: the
// default country for a reply's number written nationally. The first store error is kept (later
// ones are counted only).
class SmsInbound {
 public:
  SmsInbound(TaskStore& store, std::string country) : store_(store), country_(std::move(country)) {}
  void receipt(const DeliveryReceipt& r);
  void reply(const MobileOriginated& mo);
  const SmsInboundCounts& counts() const { return counts_; }
  const std::string& first_error() const { return first_error_; }
  // "12 receipts: 9 delivered, 1 undeliverable, ...; 1 STOP (1 number, 1 recipient suppressed)"
  std::string summary() const;

 private:
  void store_error(const Error& e);

  TaskStore& store_;
  std::string country_;
  SmsInboundCounts counts_;
  std::string first_error_;
};

}  // namespace sb
