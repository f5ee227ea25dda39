// SMS delivery receipts applied to a task: the part's state in sms_ids, the recipient's status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/task_store.h"

namespace sb {

const char* sms_receipt_effect_name(SmsReceiptEffect e);

// Applies one receipt in its own savepoint (so it may run inside or outside a transaction),
// with the rules every store shares (store/task_store.h: sms_part_changes, sms_receipt_status,
// sms_receipt_reply): SqliteTaskStore::apply_receipt. Store errors only; an unknown id is not
// one.
Result<SmsReceiptApplied> apply_sms_receipt(sqlite3* db, const SmsReceiptUpdate& r);

// The forms the SMSC may have given a receipt's id in its submit_sm_resp, most likely first:
// as written, the other letter case, the same number in the other base (decimal/hex), without
// leading zeros.
std::vector<std::string> sms_receipt_id_forms(const std::string& id);

// The sms_ids.state value of a receipt state name: SMPP 3.4's message_state numbers
// (1 enroute, 2 delivered, 3 expired, 4 deleted, 5 undeliverable, 6 accepted, 7 unknown,
// 8 rejected); 7 for a name it does not know.
int sms_part_state(std::string_view state_name);

}  // namespace sb
