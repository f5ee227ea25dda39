// The SMPP 3.4 client session: one SMSC connection's protocol engine, driven only by bytes and
// "now".
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/outbox.h"
#include "sms/smpp_pdu.h"

namespace sb {

// A recipient's outcome for one SMS (all its parts together).
enum class SmsVerdict : uint8_t { kSent, kDeferred, kFailed };
const char* sms_verdict_name(SmsVerdict v);  // "sent", "deferred", "failed"

// Maps a submit_sm_resp (or generic_nack) command_status to a verdict: 0 sent; throttling,
// queue full and the SMSC's own temporary failures deferred; everything else (bad
// destination, bad source, rejected content ...) failed.
SmsVerdict sms_verdict_for(uint32_t command_status);
// ESME_RTHROTTLED or ESME_RMSGQFUL: the SMSC asks us to slow down.
bool smpp_status_throttles(uint32_t command_status);

// One SMS to one recipient. The host owns it, and the memory its views point to, until
// SmppHost::message_outcome.
struct SmsMessage {
  std::string_view to;  // E.164, with or without '+': sent as digits, TON 1 (international), NPI 1
  std::string_view text;  // UTF-8; encoded as GSM 03.38 when every character fits, else UCS-2
  uint64_t cookie = 0;    // the host's handle for this recipient
  // A retry of a concatenated message the SMSC accepted some parts of (issue 19): the ids the
  // earlier attempt got, one per part ("" for a part still to send), and the concatenation
  // reference its parts carried. Only the missing parts are sent, with that reference, so the
  // phone joins them with the parts it has (it would show accepted parts twice if the whole
  // message were sent again). Ignored when the text no longer splits into that many parts.
  // Empty: a first attempt. The view must stay valid until message_outcome.
  std::span<const std::string> accepted_before;
  // In with accepted_before; out: the reference the message's parts carry (0 for one part).
  // The host keeps it with the ids of a deferred partial message for its retry.
  uint8_t concat_ref = 0;

  // Session-private progress.
  uint16_t parts = 0;         // parts of the (concatenated) message
  uint16_t parts_open = 0;    // parts submitted or waiting, without a response yet
  uint16_t parts_unsent = 0;  // parts not yet submitted (window full)
  uint16_t next_part = 0;     // the next part to look at for submitting
  SmsVerdict worst = SmsVerdict::kSent;
  uint32_t worst_status = 0;
  bool throttled = false;
  uint8_t data_coding = 0;
  std::vector<std::string> pdus;         // each part's short_message octets (UDH included)
  std::vector<std::string> message_ids;  // per part, from submit_sm_resp; "" until it came
};

// What became of one SmsMessage: a single report for all its parts. The worst part decides
// (failed over deferred over sent): a concatenated message is one recipient's outcome.
struct SmsOutcome {
  SmsVerdict verdict = SmsVerdict::kSent;
  uint32_t status = 0;     // the SMPP command_status of the deciding part (0 when sent)
  std::string_view text;   // "ESME_RTHROTTLED (0x00000058)", "connection lost: ...", or ""
  bool throttled = false;  // a part was refused with ESME_RTHROTTLED / ESME_RMSGQFUL: slow down
  // The SMSC's message_id of every part (in part order; "" for a part it did not accept):
  // delivery receipts name these ids. A retry's parts accepted before keep their earlier ids
  // here; the verdict is that of the parts sent this time.
  std::span<const std::string> message_ids;
  uint16_t parts = 0;
};

class SmppHost {
 public:
  virtual ~SmppHost() = default;
  enum class Next { kMessage, kWait, kDone };
  // Offers the next message (kMessage, with out set). kWait: nothing now, call poke() when
  // there is; the session stays bound (receipts keep arriving). kDone: unbind once every
  // outstanding response came.
  virtual Next next_message(SmsMessage*& out) = 0;
  // Exactly one call per message handed out; afterwards the session holds no reference to it.
  virtual void message_outcome(SmsMessage& m, const SmsOutcome& o) = 0;
  // A deliver_sm carrying a delivery receipt (the session has already answered it).
  virtual void on_receipt(const DeliveryReceipt& r) = 0;
  // A deliver_sm carrying a message from a phone ("STOP"), text decoded to UTF-8.
  virtual void on_mobile_originated(const MobileOriginated& mo) = 0;
};

struct SmppConfig {
  std::string system_id;    // at most 15 octets
  std::string password;     // at most 8 octets; never logged, never in end texts
  std::string system_type;  // at most 12 octets, often ""
  uint8_t addr_ton = 0;     // bind_transceiver's address range TON/NPI (usually 0/0)
  uint8_t addr_npi = 0;
  std::string address_range;
  // The sender shown on the phone: digits ("+447700900123", a short code "12345") or
  // alphanumeric ("Shop", at most 11 characters).
  std::string source_addr;
  // TON/NPI of source_addr; -1: chosen from its form - '+' and digits, or more than 8 digits:
  // international 1/1 (sent without '+'); up to 8 digits: a short code, 3/0; letters:
  // alphanumeric 5/0; empty: 0/0, the SMSC's default sender.
  int source_ton = -1;
  int source_npi = -1;
  bool request_receipts = true;          // registered_delivery = 1
  uint32_t window = 10;                  // submit_sm PDUs outstanding at once (at least 1)
  uint32_t enquire_link_ms = 30000;      // idle time before a keep-alive enquire_link
  uint32_t bind_timeout_ms = 10000;      // bind_transceiver_resp
  uint32_t response_timeout_ms = 30000;  // any other response; then the connection is dropped
  uint32_t unbind_timeout_ms = 5000;
  // After ESME_RTHROTTLED / ESME_RMSGQFUL, no new submit_sm for this long (the host's rate
  // push-back acts on top).
  uint32_t throttle_pause_ms = 1000;
};

// The first key of cfg that SMPP cannot carry ("system_id: longer than 15 octets"); "" when
// every field fits. The CLI turns it into exit 2 naming its own key.
std::string smpp_config_problem(const SmppConfig& cfg);

enum class SmppEndCause : uint8_t {
  kNone,            // still running, or ended by unbind
  kBindRefused,     // bind_transceiver_resp with an error status: fatal, the provider's reason
  kUnbound,         // the SMSC sent unbind
  kTimeout,         // a response did not come in time
  kConnectionLost,  // on_closed
  kProtocolError,   // a PDU we cannot parse, a response nobody asked for
  kClosedByDriver,  // force_close
};
const char* smpp_end_cause_name(SmppEndCause c);

struct SmppEnd {
  SmppEndCause cause = SmppEndCause::kNone;
  // "the SMSC refused the bind: ESME_RINVPASWD (0x0000000E)"
  std::string text;
  uint32_t status = 0;     // the command_status it came with, or 0
  bool fatal = false;      // reconnecting cannot cure it (bind refused): the run must stop
  bool transient = false;  // the bind refusal was a temporary one (throttled, system error)
};

class SmppSession {
 public:
  SmppSession(const SmppConfig& cfg, SmppHost& host, Outbox& out);
  ~SmppSession();
  SmppSession(const SmppSession&) = delete;
  SmppSession& operator=(const SmppSession&) = delete;

  // The transport is up (TLS handshake done, if any): sends bind_transceiver.
  void on_connected(uint64_t now_ms);
  void on_data(std::string_view in, uint64_t now_ms);
  // Call when now_ms >= deadline_ms().
  void on_timer(uint64_t now_ms);
  // The transport failed or the peer closed: every open message is deferred.
  void on_closed(std::string_view why, uint64_t now_ms);
  // The host has work again after answering kWait.
  void poke(uint64_t now_ms);
  // Ends the session at once (run aborted, connect failed); open messages are deferred.
  void force_close(std::string_view why, bool fatal, uint64_t now_ms);

  // The driver closes the connection once the outbox is flushed.
  bool wants_close() const { return phase_ == Phase::kClosed; }
  // Absolute time at which on_timer must run; 0 = none.
  uint64_t deadline_ms() const { return deadline_; }
  bool bound() const { return phase_ == Phase::kBound || phase_ == Phase::kUnbinding; }
  // True once a bind_transceiver_resp with status 0 came (for `sms check`).
  bool bind_reached() const { return bind_reached_; }
  // The SMSC's system_id from its bind response.
  const std::string& smsc_system_id() const { return smsc_system_id_; }
  // Why the session ended (cause kNone while it runs or after a clean unbind).
  const SmppEnd& end() const { return end_; }
  bool fatal() const { return end_.fatal; }
  // submit_sm PDUs sent and not yet answered.
  uint32_t in_flight() const { return submits_pending_; }
  uint64_t messages_started() const { return started_; }

 private:
  enum class Phase { kInit, kBinding, kBound, kUnbinding, kClosed };
  enum class Await : uint8_t { kBind, kSubmit, kEnquireLink, kUnbind };
  struct Pending {
    uint32_t seq;
    Await what;
    SmsMessage* msg;  // kSubmit only
    uint16_t part;
    uint64_t sent_ms;
  };

  void handle(const PduHeader& h, std::string_view pdu, uint64_t now_ms);
  void handle_response(const PduHeader& h, std::string_view pdu, uint64_t now_ms);
  void handle_deliver(const PduHeader& h, std::string_view pdu, uint64_t now_ms);
  void pump(uint64_t now_ms);
  bool start_message(SmsMessage* m, uint64_t now_ms);
  void submit_part(SmsMessage* m, uint64_t now_ms);
  void part_done(SmsMessage* m, uint16_t part, SmsVerdict v, uint32_t status, std::string_view text,
                 bool throttled);
  void finish(SmsMessage* m, std::string_view text);
  void abort_all(std::string_view why);
  void close_with(SmppEndCause cause, std::string text, uint32_t status, bool fatal,
                  bool transient = false);
  void send_unbind(uint64_t now_ms);
  uint32_t next_seq();
  void rearm(uint64_t now_ms);

  const SmppConfig& cfg_;
  SmppHost& host_;
  Outbox& out_;
  PduReader reader_;
  Phase phase_ = Phase::kInit;
  std::deque<Pending> pending_;    // requests awaiting a response, oldest first
  std::vector<SmsMessage*> live_;  // messages handed out, not yet reported, oldest first
  std::string scratch_;            // one PDU being built
  std::string last_text_;          // the text of the outcome being reported
  std::string smsc_system_id_;
  SmppEnd end_;
  uint32_t seq_ = 0;
  uint64_t deadline_ = 0;
  uint64_t last_io_ms_ = 0;       // last PDU in or out, for the enquire_link idle timer
  uint64_t paused_until_ms_ = 0;  // throttled: no new submit_sm before this
  uint64_t started_ = 0;
  uint32_t submits_pending_ = 0;  // Await::kSubmit entries in pending_ (the window)
  bool host_done_ = false;
  bool in_pump_ = false;
  bool bind_reached_ = false;
};

}  // namespace sb
