// Receipts and STOP replies from an SMSC applied to a task (store/sms_receipts, suppression).
#include "cli/sms_inbound.h"

#include <ctime>

#include "sms/phone.h"
#include "store/sms_receipts.h"

namespace sb {

void SmsInbound::store_error(const Error& e) {
  ++counts_.store_errors;
  if (first_error_.empty()) first_error_ = e.message;
}

void SmsInbound::receipt(const DeliveryReceipt& r) {
  ++counts_.receipts;
  SmsReceiptUpdate u{r.id, receipt_state_name(r.state), r.stat, r.err,
                     static_cast<int64_t>(std::time(nullptr))};
  auto a = store_.apply_receipt(u);
  if (!a.ok()) return store_error(a.error());
  switch (a->effect) {
    case SmsReceiptEffect::kUnknownId: ++counts_.unknown_ids; break;
    case SmsReceiptEffect::kDuplicate: ++counts_.duplicates; break;
    case SmsReceiptEffect::kRecorded: ++counts_.recorded; break;
    case SmsReceiptEffect::kSettled:
      if (a->status == RcptStatus::kDelivered) ++counts_.delivered;
      if (a->status == RcptStatus::kUndeliverable) ++counts_.undeliverable;
      if (a->status == RcptStatus::kExpired) ++counts_.expired;
      break;
  }
}

void SmsInbound::reply(const MobileOriginated& mo) {
  if (!mo.is_stop()) {
    ++counts_.other_replies;
    return;
  }
  ++counts_.stops;
  auto number = smsc_number_e164(mo.from, country_);
  if (!number.ok()) {
    ++counts_.bad_numbers;
    return;
  }
  auto a = store_.add_suppression(*number, "STOP reply", 0);
  if (!a.ok()) return store_error(a.error());
  if (a->added) ++counts_.stop_numbers;
  counts_.suppressed += a->recipients;
}

std::string SmsInbound::summary() const {
  const SmsInboundCounts& c = counts_;
  auto n = [](uint64_t v) { return std::to_string(v); };
  std::string s = n(c.receipts) + " receipt" + (c.receipts == 1 ? "" : "s") + ": " +
                  n(c.delivered) + " delivered, " + n(c.undeliverable) + " undeliverable, " +
                  n(c.expired) + " expired, " + n(c.recorded) + " part states recorded, " +
                  n(c.duplicates) + " duplicate, " + n(c.unknown_ids) + " for unknown ids; " +
                  n(c.stops) + " STOP repl" + (c.stops == 1 ? "y" : "ies") + " (" +
                  n(c.stop_numbers) + " number" + (c.stop_numbers == 1 ? "" : "s") +
                  " added to the task's suppression list, " + n(c.suppressed) +
                  " unsent recipient" + (c.suppressed == 1 ? "" : "s") + " suppressed)";
  if (c.bad_numbers > 0) s += ", " + n(c.bad_numbers) + " STOP from no phone number";
  if (c.other_replies > 0) s += ", " + n(c.other_replies) + " other replies";
  return s;
}

}  // namespace sb
