#include "sms/smpp_session.h"

#include <algorithm>
#include <atomic>
#include <cassert>

#include "sms/gsm_encoding.h"
#include "sms/phone.h"

namespace sb {

const char* sms_verdict_name(SmsVerdict v) {
  switch (v) {
    case SmsVerdict::kSent: return "sent";
    case SmsVerdict::kDeferred: return "deferred";
    case SmsVerdict::kFailed: return "failed";
  }
  return "?";
}

bool smpp_status_throttles(uint32_t s) {
  return s == smpp_status::kThrottled || s == smpp_status::kMsgQFul;
}

SmsVerdict sms_verdict_for(uint32_t s) {
  switch (s) {
    case smpp_status::kOk: return SmsVerdict::kSent;
    case smpp_status::kThrottled:
    case smpp_status::kMsgQFul:
    case smpp_status::kSysErr:
    case smpp_status::kSubmitFail:
    case smpp_status::kXTAppn:
    case smpp_status::kUnknownErr:
    case 0x04:  // ESME_RINVBNDSTS: our bind state, never the recipient's fault
      return SmsVerdict::kDeferred;
    default: return SmsVerdict::kFailed;
  }
}

const char* smpp_end_cause_name(SmppEndCause c) {
  switch (c) {
    case SmppEndCause::kNone: return "none";
    case SmppEndCause::kBindRefused: return "bind refused";
    case SmppEndCause::kUnbound: return "unbound by the SMSC";
    case SmppEndCause::kTimeout: return "timeout";
    case SmppEndCause::kConnectionLost: return "connection lost";
    case SmppEndCause::kProtocolError: return "protocol error";
    case SmppEndCause::kClosedByDriver: return "closed";
  }
  return "?";
}

std::string smpp_config_problem(const SmppConfig& c) {
  if (c.system_id.empty()) return "system_id: missing";
  if (c.system_id.size() > 15) return "system_id: longer than 15 octets";
  if (c.password.size() > 8) return "password: longer than 8 octets (SMPP 3.4 carries at most 8)";
  if (c.system_type.size() > 12) return "system_type: longer than 12 octets";
  if (c.address_range.size() > 40) return "address_range: longer than 40 octets";
  if (c.source_addr.size() > 20) return "sender: longer than 20 octets";
  bool digits = !c.source_addr.empty() &&
                std::all_of(c.source_addr.begin() + (c.source_addr[0] == '+' ? 1 : 0),
                            c.source_addr.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (!digits && c.source_addr.size() > 11)
    return "sender: alphanumeric, longer than 11 characters";
  for (const std::string* s : {&c.system_id, &c.password, &c.system_type, &c.source_addr}) {
    if (s->find('\0') != std::string::npos) return "a field contains a NUL octet";
  }
  if (c.window == 0) return "window: must be at least 1";
  if (c.source_ton > 6 || c.source_npi > 18) return "source TON/NPI: out of range";
  return "";
}

namespace {

// The TON/NPI for a sender, chosen from its form when the configuration leaves them open.
void source_ton_npi(const SmppConfig& c, std::string_view& addr, uint8_t& ton, uint8_t& npi) {
  addr = c.source_addr;
  int t = c.source_ton, n = c.source_npi;
  bool plus = !addr.empty() && addr[0] == '+';
  if (plus) addr.remove_prefix(1);
  bool digits = !addr.empty() && std::all_of(addr.begin(), addr.end(),
                                             [](char ch) { return ch >= '0' && ch <= '9'; });
  int auto_ton = 0, auto_npi = 0;
  if (addr.empty()) {
    auto_ton = 0, auto_npi = 0;  // the SMSC's default sender
  } else if (!digits) {
    auto_ton = 5, auto_npi = 0;  // alphanumeric
  } else if (plus || addr.size() > 8) {
    auto_ton = 1, auto_npi = 1;  // international
  } else {
    auto_ton = 3, auto_npi = 0;  // a short code: network specific
  }
  ton = static_cast<uint8_t>(t >= 0 ? t : auto_ton);
  npi = static_cast<uint8_t>(n >= 0 ? n : auto_npi);
}

bool valid_destination(std::string_view d) {
  return !d.empty() && d.size() <= 20 &&
         std::all_of(d.begin(), d.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

int rank(SmsVerdict v) { return v == SmsVerdict::kFailed ? 2 : v == SmsVerdict::kDeferred ? 1 : 0; }

}  // namespace

SmppSession::SmppSession(const SmppConfig& cfg, SmppHost& host, Outbox& out)
    : cfg_(cfg), host_(host), out_(out) {}

SmppSession::~SmppSession() {
  // Every message handed out must have had its outcome (SmppHost contract).
  assert(live_.empty());
}

uint32_t SmppSession::next_seq() {
  seq_ = seq_ >= 0x7FFFFFFF ? 1 : seq_ + 1;
  return seq_;
}

void SmppSession::on_connected(uint64_t now_ms) {
  if (phase_ != Phase::kInit) return;
  scratch_.clear();
  BindParams p{cfg_.system_id,     cfg_.password, cfg_.system_type,
               cfg_.address_range, cfg_.addr_ton, cfg_.addr_npi};
  uint32_t seq = next_seq();
  if (!pack_bind_transceiver(seq, p, scratch_)) {
    close_with(SmppEndCause::kBindRefused,
               "the SMPP account cannot be bound: " + smpp_config_problem(cfg_), 0, true);
    return;
  }
  out_.append(scratch_);
  std::fill(scratch_.begin(), scratch_.end(), '\0');  // it held the password
  pending_.push_back({seq, Await::kBind, nullptr, 0, now_ms});
  phase_ = Phase::kBinding;
  last_io_ms_ = now_ms;
  rearm(now_ms);
}

void SmppSession::on_data(std::string_view in, uint64_t now_ms) {
  if (phase_ == Phase::kClosed) return;
  last_io_ms_ = now_ms;
  PduHeader h;
  std::string_view pdu;
  while (reader_.next(in, h, pdu)) {
    handle(h, pdu, now_ms);
    if (phase_ == Phase::kClosed) return;
  }
  if (reader_.failed()) {
    close_with(SmppEndCause::kProtocolError, "the SMSC sent " + reader_.error(), 0, false);
    return;
  }
  pump(now_ms);
  rearm(now_ms);
}

void SmppSession::handle(const PduHeader& h, std::string_view pdu, uint64_t now_ms) {
  if (h.command_id & 0x80000000u) {
    handle_response(h, pdu, now_ms);
    return;
  }
  scratch_.clear();
  switch (h.command_id) {
    case smpp_cmd::kDeliverSm: handle_deliver(h, pdu, now_ms); return;
    case smpp_cmd::kEnquireLink:
      pack_enquire_link_resp(h.seq, scratch_);
      out_.append(scratch_);
      return;
    case smpp_cmd::kUnbind:
      pack_unbind_resp(h.seq, scratch_);
      out_.append(scratch_);
      close_with(SmppEndCause::kUnbound, "the SMSC ended the session (unbind)", 0, false);
      return;
    default:
      // A request we do not serve (outbind, data_sm, alert_notification ...).
      pack_generic_nack(h.seq, smpp_status::kInvCmdId, scratch_);
      out_.append(scratch_);
      return;
  }
}

void SmppSession::handle_response(const PduHeader& h, std::string_view pdu, uint64_t now_ms) {
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const Pending& p) { return p.seq == h.seq; });
  if (it == pending_.end()) {
    close_with(SmppEndCause::kProtocolError,
               std::string("the SMSC sent a ") + smpp_command_name(h.command_id) +
                   " for no request of ours (sequence " + std::to_string(h.seq) + ")",
               h.status, false);
    return;
  }
  Pending p = *it;
  pending_.erase(it);
  if (p.what == Await::kSubmit) --submits_pending_;
  bool nack = h.command_id == smpp_cmd::kGenericNack;
  auto wrong = [&](const char* expected) {
    close_with(
        SmppEndCause::kProtocolError,
        std::string("the SMSC answered ") + expected + " with " + smpp_command_name(h.command_id),
        h.status, false);
  };
  std::string error;
  switch (p.what) {
    case Await::kBind: {
      if (!nack && h.command_id != smpp_cmd::kBindTransceiverResp) return wrong("bind_transceiver");
      if (h.status != smpp_status::kOk) {
        bool transient = smpp_status_throttles(h.status) || h.status == smpp_status::kSysErr;
        close_with(SmppEndCause::kBindRefused,
                   "the SMSC refused the bind: " + smpp_status_text(h.status), h.status, true,
                   transient);
        return;
      }
      if (nack) return wrong("bind_transceiver");
      // Status 0 is the bind; the system_id is only for messages, so a body we cannot read
      // (vendor TLVs beyond what we accept) does not undo it.
      if (!parse_bind_resp(pdu, smsc_system_id_, error)) smsc_system_id_.clear();
      phase_ = Phase::kBound;
      bind_reached_ = true;
      return;
    }
    case Await::kSubmit: {
      if (!nack && h.command_id != smpp_cmd::kSubmitSmResp) {
        // The part's fate is unknown: the connection is out of step, and closing defers it.
        pending_.push_front(p);
        ++submits_pending_;
        return wrong("submit_sm");
      }
      uint32_t status = h.status;
      SmsVerdict v = sms_verdict_for(status);
      std::string id;
      if (v == SmsVerdict::kSent && !nack) {
        // Accepted: an id we cannot read still means accepted (resending would duplicate the
        // message); only its receipt cannot be matched.
        if (!parse_submit_sm_resp(pdu, id, error)) id.clear();
      } else if (nack && status == smpp_status::kOk) {
        v = SmsVerdict::kDeferred;  // a generic_nack without a reason: not accepted
        status = smpp_status::kUnknownErr;
      }
      bool throttled = smpp_status_throttles(status);
      if (throttled) paused_until_ms_ = now_ms + cfg_.throttle_pause_ms;
      if (p.part < p.msg->message_ids.size()) p.msg->message_ids[p.part] = std::move(id);
      part_done(p.msg, p.part, v, status, {}, throttled);
      return;
    }
    case Await::kEnquireLink: return;  // alive; a generic_nack also proves it
    case Await::kUnbind: close_with(SmppEndCause::kNone, "", 0, false); return;
  }
}

void SmppSession::handle_deliver(const PduHeader& h, std::string_view pdu, uint64_t now_ms) {
  (void)now_ms;
  DeliverSm d;
  std::string error;
  if (!parse_deliver_sm(pdu, d, error)) {
    // Permanent application error: the SMSC must not redeliver what we will never parse.
    pack_deliver_sm_resp(h.seq, 0x65 /* ESME_RX_P_APPN */, scratch_);
    out_.append(scratch_);
    return;
  }
  // Answer first: the host may take its time, and the SMSC redelivers unanswered receipts.
  pack_deliver_sm_resp(h.seq, smpp_status::kOk, scratch_);
  out_.append(scratch_);
  if (d.is_receipt()) {
    DeliveryReceipt r;
    if (receipt_from_deliver(d, r)) host_.on_receipt(r);
  } else {
    host_.on_mobile_originated(mo_from_deliver(d));
  }
}

void SmppSession::part_done(SmsMessage* m, uint16_t part, SmsVerdict v, uint32_t status,
                            std::string_view text, bool throttled) {
  (void)part;
  assert(m->parts_open > 0);
  --m->parts_open;
  if (rank(v) > rank(m->worst)) {
    m->worst = v;
    m->worst_status = status;
  }
  m->throttled = m->throttled || throttled;
  // A part refused: the rest would be wasted (the message is retried or failed whole).
  if (v != SmsVerdict::kSent) m->parts_unsent = 0;
  if (m->parts_open == 0 && m->parts_unsent == 0) finish(m, text);
}

void SmppSession::finish(SmsMessage* m, std::string_view text) {
  auto it = std::find(live_.begin(), live_.end(), m);
  assert(it != live_.end());
  live_.erase(it);
  if (text.empty() && m->worst != SmsVerdict::kSent) {
    last_text_ = smpp_status_text(m->worst_status);
  } else {
    last_text_.assign(text);
  }
  SmsOutcome o;
  o.verdict = m->worst;
  o.status = m->worst_status;
  o.text = last_text_;
  o.throttled = m->throttled;
  o.message_ids = m->message_ids;
  o.parts = m->parts;
  host_.message_outcome(*m, o);
}

bool SmppSession::start_message(SmsMessage* m, uint64_t now_ms) {
  (void)now_ms;
  m->worst = SmsVerdict::kSent;
  m->worst_status = 0;
  m->throttled = false;
  m->pdus.clear();
  m->message_ids.clear();
  m->parts = m->parts_open = m->parts_unsent = 0;
  ++started_;
  live_.push_back(m);
  std::string_view to = e164_digits(m->to);
  std::string problem;
  if (!valid_destination(to)) {
    problem = "not a phone number SMPP can carry: '" + std::string(m->to.substr(0, 24)) + "'";
  } else {
    // The reference tells a phone which parts belong together: process-wide, so messages sent
    // over several connections (or after a reconnect) to one phone do not share one.
    static std::atomic<uint32_t> next_ref{0};
    const bool retry = !m->accepted_before.empty();
    bool multi = m->text.size() > kUcs2SingleChars;  // may need parts: spend a reference
    uint8_t ref = retry   ? m->concat_ref
                  : multi ? static_cast<uint8_t>(next_ref.fetch_add(1, std::memory_order_relaxed))
                          : 0;
    auto enc = encode_sms(m->text, ref);
    if (enc && retry && enc->parts.size() != m->accepted_before.size()) {
      // Not the message the ids were for (the text changed): sent whole, afresh.
      m->accepted_before = {};
      ref = multi ? static_cast<uint8_t>(next_ref.fetch_add(1, std::memory_order_relaxed)) : 0;
      enc = encode_sms(m->text, ref);
    }
    if (!enc) {
      problem = enc.error().message;
    } else {
      m->data_coding = sms_data_coding(enc->coding);
      m->pdus = std::move(enc->parts);
      m->parts = m->parts_unsent = static_cast<uint16_t>(m->pdus.size());
      m->concat_ref = m->parts > 1 ? ref : 0;
      m->next_part = 0;
      if (!m->accepted_before.empty()) {
        m->message_ids.assign(m->accepted_before.begin(), m->accepted_before.end());
        for (const auto& id : m->message_ids) {
          if (!id.empty()) --m->parts_unsent;
        }
        if (m->parts_unsent == 0) {  // nothing is missing: sent as it was
          finish(m, "");
          return false;
        }
      } else {
        m->message_ids.resize(m->parts);
      }
      return true;
    }
  }
  m->worst = SmsVerdict::kFailed;
  finish(m, problem);
  return false;
}

void SmppSession::submit_part(SmsMessage* m, uint64_t now_ms) {
  // The next part without an id: on a retry, the parts accepted before are skipped.
  while (m->next_part < m->parts && !m->message_ids[m->next_part].empty()) ++m->next_part;
  assert(m->next_part < m->parts);
  const uint16_t part = m->next_part++;
  SubmitParams p;
  source_ton_npi(cfg_, p.source_addr, p.source_ton, p.source_npi);
  p.dest_addr = e164_digits(m->to);
  p.esm_class = m->parts > 1 ? 0x40 : 0x00;
  p.data_coding = m->data_coding;
  p.registered_delivery = cfg_.request_receipts ? 1 : 0;
  p.short_message = m->pdus[part];
  uint32_t seq = next_seq();
  scratch_.clear();
  --m->parts_unsent;
  if (!pack_submit_sm(seq, p, scratch_)) {
    // Checked by start_message and smpp_config_problem: a part that cannot be packed is a
    // bug, but the recipient still gets an outcome.
    ++m->parts_open;
    part_done(m, part, SmsVerdict::kFailed, 0, "the message cannot be packed as submit_sm", false);
    return;
  }
  out_.append(scratch_);
  ++m->parts_open;
  pending_.push_back({seq, Await::kSubmit, m, part, now_ms});
  ++submits_pending_;
  last_io_ms_ = now_ms;
}

void SmppSession::pump(uint64_t now_ms) {
  if (in_pump_ || phase_ != Phase::kBound) return;
  in_pump_ = true;
  uint32_t window = std::max<uint32_t>(cfg_.window, 1);
  while (phase_ == Phase::kBound) {
    if (in_flight() >= window || now_ms < paused_until_ms_) break;
    // Parts of messages already started go first: a concatenated message leaves together.
    auto unsent = std::find_if(live_.begin(), live_.end(),
                               [](const SmsMessage* m) { return m->parts_unsent > 0; });
    if (unsent != live_.end()) {
      SmsMessage* m = *unsent;
      submit_part(m, now_ms);
      continue;
    }
    if (host_done_) break;
    SmsMessage* m = nullptr;
    SmppHost::Next n = host_.next_message(m);
    if (n == SmppHost::Next::kDone) {
      host_done_ = true;
      break;
    }
    if (n == SmppHost::Next::kWait) break;
    assert(m != nullptr);
    start_message(m, now_ms);
  }
  in_pump_ = false;
  if (phase_ == Phase::kBound && host_done_ && live_.empty()) send_unbind(now_ms);
}

void SmppSession::send_unbind(uint64_t now_ms) {
  uint32_t seq = next_seq();
  scratch_.clear();
  pack_unbind(seq, scratch_);
  out_.append(scratch_);
  pending_.push_back({seq, Await::kUnbind, nullptr, 0, now_ms});
  phase_ = Phase::kUnbinding;
  rearm(now_ms);
}

void SmppSession::poke(uint64_t now_ms) {
  pump(now_ms);
  rearm(now_ms);
}

void SmppSession::on_timer(uint64_t now_ms) {
  if (phase_ == Phase::kClosed) return;
  for (const Pending& p : pending_) {
    uint32_t limit = p.what == Await::kBind     ? cfg_.bind_timeout_ms
                     : p.what == Await::kUnbind ? cfg_.unbind_timeout_ms
                                                : cfg_.response_timeout_ms;
    if (now_ms >= p.sent_ms + limit) {
      if (p.what == Await::kUnbind) {
        close_with(SmppEndCause::kNone, "", 0, false);  // we were leaving anyway
        return;
      }
      const char* what = p.what == Await::kBind          ? "bind_transceiver_resp"
                         : p.what == Await::kEnquireLink ? "enquire_link_resp"
                                                         : "submit_sm_resp";
      close_with(SmppEndCause::kTimeout,
                 std::string("the SMSC sent no ") + what + " within " +
                     std::to_string(limit / 1000) + " s",
                 0, false);
      return;
    }
  }
  if (phase_ == Phase::kBound && cfg_.enquire_link_ms > 0 &&
      now_ms >= last_io_ms_ + cfg_.enquire_link_ms &&
      std::none_of(pending_.begin(), pending_.end(),
                   [](const Pending& p) { return p.what == Await::kEnquireLink; })) {
    uint32_t seq = next_seq();
    scratch_.clear();
    pack_enquire_link(seq, scratch_);
    out_.append(scratch_);
    pending_.push_back({seq, Await::kEnquireLink, nullptr, 0, now_ms});
    last_io_ms_ = now_ms;
  }
  pump(now_ms);
  rearm(now_ms);
}

void SmppSession::rearm(uint64_t now_ms) {
  if (phase_ == Phase::kClosed) {
    deadline_ = 0;
    return;
  }
  uint64_t d = 0;
  auto consider = [&](uint64_t t) {
    if (d == 0 || t < d) d = t;
  };
  for (const Pending& p : pending_) {
    uint32_t limit = p.what == Await::kBind     ? cfg_.bind_timeout_ms
                     : p.what == Await::kUnbind ? cfg_.unbind_timeout_ms
                                                : cfg_.response_timeout_ms;
    consider(p.sent_ms + limit);
    // Submits leave in order with one timeout: the oldest decides for the rest.
    if (p.what == Await::kSubmit) break;
  }
  if (phase_ == Phase::kBound && cfg_.enquire_link_ms > 0) {
    consider(last_io_ms_ + cfg_.enquire_link_ms);
  }
  if (phase_ == Phase::kBound && paused_until_ms_ > now_ms) consider(paused_until_ms_);
  deadline_ = d;
}

void SmppSession::on_closed(std::string_view why, uint64_t now_ms) {
  (void)now_ms;
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kUnbinding && live_.empty()) {
    close_with(SmppEndCause::kNone, "", 0, false);  // closed before unbind_resp: done anyway
    return;
  }
  close_with(SmppEndCause::kConnectionLost, "connection lost: " + std::string(why), 0, false);
}

void SmppSession::force_close(std::string_view why, bool fatal, uint64_t now_ms) {
  (void)now_ms;
  if (phase_ == Phase::kClosed) return;
  close_with(SmppEndCause::kClosedByDriver, std::string(why), 0, fatal);
}

void SmppSession::close_with(SmppEndCause cause, std::string text, uint32_t status, bool fatal,
                             bool transient) {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  deadline_ = 0;
  end_.cause = cause;
  end_.text = std::move(text);
  end_.status = status;
  end_.fatal = fatal;
  end_.transient = transient;
  pending_.clear();
  submits_pending_ = 0;
  abort_all(end_.text.empty() ? "the session ended" : end_.text);
}

void SmppSession::abort_all(std::string_view why) {
  // Parts without a response may or may not have been accepted: deferred, as SMTP defers a
  // message whose final reply never came. A part already refused for good keeps the message
  // failed.
  std::vector<SmsMessage*> open;
  open.swap(live_);
  std::string text(why);
  for (SmsMessage* m : open) {
    live_.push_back(m);
    m->parts_unsent = 0;
    m->parts_open = 0;
    if (m->worst == SmsVerdict::kSent) {
      m->worst = SmsVerdict::kDeferred;
      m->worst_status = 0;
    }
    finish(m, m->worst == SmsVerdict::kFailed ? std::string_view() : std::string_view(text));
  }
}

}  // namespace sb
