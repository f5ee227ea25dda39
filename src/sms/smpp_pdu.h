// SMPP 3.4 PDUs: framing, packing and parsing (libsmpp34 confined to smpp_pdu.cc), receipts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sb {

// command_id values (SMPP 3.4 §5.1.2.1).
namespace smpp_cmd {
inline constexpr uint32_t kGenericNack = 0x80000000;
inline constexpr uint32_t kBindTransceiver = 0x00000009;
inline constexpr uint32_t kBindTransceiverResp = 0x80000009;
inline constexpr uint32_t kSubmitSm = 0x00000004;
inline constexpr uint32_t kSubmitSmResp = 0x80000004;
inline constexpr uint32_t kDeliverSm = 0x00000005;
inline constexpr uint32_t kDeliverSmResp = 0x80000005;
inline constexpr uint32_t kUnbind = 0x00000006;
inline constexpr uint32_t kUnbindResp = 0x80000006;
inline constexpr uint32_t kEnquireLink = 0x00000015;
inline constexpr uint32_t kEnquireLinkResp = 0x80000015;
}  // namespace smpp_cmd

// command_status values the session acts on (SMPP 3.4 §5.1.3).
namespace smpp_status {
inline constexpr uint32_t kOk = 0x00;
inline constexpr uint32_t kInvMsgLen = 0x01;
inline constexpr uint32_t kInvCmdLen = 0x02;
inline constexpr uint32_t kInvCmdId = 0x03;
inline constexpr uint32_t kSysErr = 0x08;
inline constexpr uint32_t kBindFail = 0x0D;
inline constexpr uint32_t kInvPaswd = 0x0E;
inline constexpr uint32_t kInvSysId = 0x0F;
inline constexpr uint32_t kMsgQFul = 0x14;
inline constexpr uint32_t kSubmitFail = 0x45;
inline constexpr uint32_t kThrottled = 0x58;
inline constexpr uint32_t kXTAppn = 0x64;  // ESME receiver temporary app error
inline constexpr uint32_t kDeliveryFailure = 0xFE;
inline constexpr uint32_t kUnknownErr = 0xFF;
}  // namespace smpp_status

// "ESME_RTHROTTLED (0x00000058)"; unknown codes as "status 0x00000401".
std::string smpp_status_text(uint32_t status);
const char* smpp_command_name(uint32_t command_id);  // "submit_sm_resp", or "unknown"

struct PduHeader {
  uint32_t length = 0;  // command_length: the whole PDU, header included
  uint32_t command_id = 0;
  uint32_t status = 0;
  uint32_t seq = 0;
};
inline constexpr uint32_t kPduHeaderSize = 16;
// Larger PDUs are a broken or hostile peer: a deliver_sm with a 64 KB message_payload is
// still below this.
inline constexpr uint32_t kMaxPduSize = 70000;

// Cuts a byte stream into whole PDUs (split anywhere, several per read).
class PduReader {
 public:
  // Takes bytes from `in` (consuming them) until one whole PDU is buffered: true, with the
  // PDU's header and its bytes (valid until the next call). False: `in` is used up, or the
  // stream is broken (failed()).
  bool next(std::string_view& in, PduHeader& h, std::string_view& pdu);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string buf_;
  size_t want_ = kPduHeaderSize;
  bool done_ = false;  // buf_ held a whole PDU returned by the previous call
  std::string error_;
};

// ---- Packing: each appends one whole PDU to `out`. -------------------------------------

struct BindParams {
  std::string_view system_id, password, system_type, address_range;
  uint8_t addr_ton = 0, addr_npi = 0;
};
bool pack_bind_transceiver(uint32_t seq, const BindParams& p, std::string& out);

struct SubmitParams {
  std::string_view source_addr;
  uint8_t source_ton = 0, source_npi = 0;
  std::string_view dest_addr;  // digits
  uint8_t dest_ton = 1, dest_npi = 1;
  uint8_t esm_class = 0;    // 0x40: short_message starts with a UDH
  uint8_t data_coding = 0;  // 0 SMSC default (GSM 03.38), 8 UCS-2
  uint8_t registered_delivery = 1;
  std::string_view short_message;  // at most 254 octets
};
bool pack_submit_sm(uint32_t seq, const SubmitParams& p, std::string& out);
// A response without a body (deliver_sm_resp has an empty message_id C-string).
void pack_deliver_sm_resp(uint32_t seq, uint32_t status, std::string& out);
void pack_enquire_link(uint32_t seq, std::string& out);
void pack_enquire_link_resp(uint32_t seq, std::string& out);
void pack_unbind(uint32_t seq, std::string& out);
void pack_unbind_resp(uint32_t seq, std::string& out);
void pack_generic_nack(uint32_t seq, uint32_t status, std::string& out);

// ---- Parsing: whole PDUs (from PduReader); false with a reason when malformed. ----------

// bind_transceiver_resp: the SMSC's system_id (empty when the status is not 0).
bool parse_bind_resp(std::string_view pdu, std::string& system_id, std::string& error);
// submit_sm_resp: the message_id the SMSC gave the message.
bool parse_submit_sm_resp(std::string_view pdu, std::string& message_id, std::string& error);

struct DeliverSm {
  std::string source_addr;  // the phone, for a receipt the recipient; for MO the sender
  std::string dest_addr;
  uint8_t esm_class = 0;
  uint8_t data_coding = 0;
  std::string short_message;  // or message_payload when short_message is empty
  std::string receipted_id;   // TLV receipted_message_id, when present
  int message_state = -1;     // TLV message_state, when present
  bool is_receipt() const { return (esm_class & 0x3C) == 0x04; }
};
bool parse_deliver_sm(std::string_view pdu, DeliverSm& d, std::string& error);

// ---- Delivery receipts (SMPP 3.4 Appendix B) and mobile-originated messages. ------------

enum class ReceiptState : uint8_t {
  kDelivered,      // DELIVRD
  kExpired,        // EXPIRED
  kDeleted,        // DELETED
  kUndeliverable,  // UNDELIV
  kAccepted,       // ACCEPTD
  kUnknown,        // UNKNOWN, or a stat we do not know
  kRejected,       // REJECTD
  kEnroute,        // ENROUTE
};
const char* receipt_state_name(ReceiptState s);  // "delivered", "expired", ...
// True for a state after which nothing more will happen to the message.
bool receipt_final(ReceiptState s);

struct DeliveryReceipt {
  std::string id;  // the SMSC's message_id, as submit_sm_resp gave it
  ReceiptState state = ReceiptState::kUnknown;
  std::string stat;                    // as sent ("DELIVRD")
  std::string err;                     // "000"
  std::string submit_date, done_date;  // YYMMDDhhmm as sent
  std::string text;
  std::string phone;  // the deliver_sm's source_addr: the recipient
};
// Parses the receipt text `id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`
// (fields in any order, keys case-insensitive, missing ones left empty). False when neither
// an id nor a stat is present.
bool parse_receipt_text(std::string_view text, DeliveryReceipt& r);
// The receipt carried by a deliver_sm: its text, with the receipted_message_id and
// message_state TLVs taking precedence when present.
bool receipt_from_deliver(const DeliverSm& d, DeliveryReceipt& r);

// True when a receipt's id names the message whose submit_sm_resp gave `submitted`: equal
// (case-insensitive), or the same number written once in hex and once in decimal - some
// SMSCs answer submit_sm in hex and write receipts in decimal, or the other way round. Two
// all-digit ids can match across bases ("10" and "16"): look for an exact match first.
bool smpp_ids_match(std::string_view submitted, std::string_view receipted);

struct MobileOriginated {
  std::string from;  // the phone's number as the SMSC gave it
  std::string to;    // our number / short code
  std::string text;  // UTF-8
  // The text is an opt-out request: STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT,
  // STOPP (Nordic), ABMELDEN (DE) - the whole message, trimmed (also of '.' and '!'),
  // case-insensitive, inner blanks counted once.
  bool is_stop() const;
};
MobileOriginated mo_from_deliver(const DeliverSm& d);

}  // namespace sb
