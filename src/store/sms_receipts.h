// SMS delivery receipts applied to a task: the part's state in sms_ids, the recipient's status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/task_store.h"

namespace sb {

// One receipt as the store needs it (the SMPP side parses it: sms/smpp_pdu.h).
struct SmsReceiptUpdate {
  std::string message_id;  // the SMSC's id of the part (receipted_message_id or "id:")
  // receipt_state_name() of the receipt: "delivered", "expired", "deleted", "undeliverable",
  // "rejected" (final) or "accepted", "enroute", "unknown" (not final: recorded only).
  std::string state;
  std::string stat;  // as the SMSC wrote it ("DELIVRD"), for the recipient's reply text
  std::string err;   // "000"
  int64_t time = 0;  // unix seconds; 0: now
};

enum class SmsReceiptEffect : uint8_t {
  kUnknownId,  // no part has that id (another task's message, or one sent elsewhere): counted
  kDuplicate,  // the part already had this state (the SMSC sent the receipt again)
  kRecorded,   // the part's state changed; the recipient did not (more parts to come, or a
               // state that is not final, or a recipient that is not settled as sent)
  kSettled,    // the recipient's status changed (delivered, undeliverable, expired)
};
const char* sms_receipt_effect_name(SmsReceiptEffect e);

struct SmsReceiptApplied {
  SmsReceiptEffect effect = SmsReceiptEffect::kUnknownId;
  int64_t rcpt_id = 0;                      // 0 for an unknown id
  RcptStatus status = RcptStatus::kUnsent;  // the recipient's status afterwards
};

// Applies one receipt in its own savepoint (so it may run inside or outside a transaction).
// The id is looked up as given, then as the same number in the other base (hex/decimal, as
// some SMSCs write receipts) and in the other letter case. A part's final state is never
// replaced by a later non-final one (ENROUTE after DELIVRD). The recipient's status follows
// its parts, for a recipient whose status is sent or already a receipt status:
//   a part undeliverable/rejected/deleted -> undeliverable; else a part expired -> expired;
//   else every part (1..parts) delivered -> delivered; else unchanged.
// Its reply becomes "receipt stat:DELIVRD err:000" (export shows it). Store errors only; an
// unknown id is not one.
Result<SmsReceiptApplied> apply_sms_receipt(sqlite3* db, const SmsReceiptUpdate& r);

// The sms_ids.state value of a receipt state name: SMPP 3.4's message_state numbers
// (1 enroute, 2 delivered, 3 expired, 4 deleted, 5 undeliverable, 6 accepted, 7 unknown,
// 8 rejected); 7 for a name it does not know.
int sms_part_state(std::string_view state_name);

}  // namespace sb
