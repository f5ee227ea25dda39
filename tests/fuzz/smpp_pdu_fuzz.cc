// Fuzz target: SMPP PDUs from an SMSC. The bytes are parsed as the body of every PDU we read
// (libsmpp34 behind smpp_pdu.cc) and fed, as a stream, to a bound session with messages in
// flight: nothing may crash, and every message handed out gets exactly one outcome.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sms/smpp_pdu.h"
#include "sms/smpp_session.h"

namespace {

std::string header(uint32_t len, uint32_t id, uint32_t status, uint32_t seq) {
  std::string s;
  for (uint32_t v : {len, id, status, seq}) {
    for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>((v >> sh) & 0xFF));
  }
  return s;
}

class Host : public sb::SmppHost {
 public:
  Host() {
    for (int i = 0; i < 4; ++i) {
      msgs_[i].cookie = static_cast<uint64_t>(i);
      msgs_[i].to = "447911123456";
      msgs_[i].text = i == 1 ? std::string_view(long_text_) : std::string_view("hi");
    }
  }
  Next next_message(sb::SmsMessage*& out) override {
    if (next_ == 4) return Next::kWait;
    out = &msgs_[next_++];
    return Next::kMessage;
  }
  void message_outcome(sb::SmsMessage& m, const sb::SmsOutcome&) override {
    if (++seen_[m.cookie] != 1) std::abort();
  }
  void on_receipt(const sb::DeliveryReceipt&) override {}
  void on_mobile_originated(const sb::MobileOriginated& mo) override { (void)mo.is_stop(); }
  void check_settled() const {
    for (int i = 0; i < next_; ++i) {
      if (seen_[i] != 1) std::abort();
    }
  }

 private:
  std::string long_text_ = std::string(400, 'x');
  sb::SmsMessage msgs_[4];
  int seen_[4] = {};
  int next_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // 1. The bytes as the body of each PDU we parse.
  std::string id, err;
  sb::DeliverSm d;
  for (uint32_t cmd : {sb::smpp_cmd::kDeliverSm, sb::smpp_cmd::kSubmitSmResp,
                       sb::smpp_cmd::kBindTransceiverResp}) {
    std::string pdu = header(static_cast<uint32_t>(16 + size), cmd, 0, 7);
    pdu.append(in);
    if (cmd == sb::smpp_cmd::kDeliverSm && sb::parse_deliver_sm(pdu, d, err)) {
      sb::DeliveryReceipt r;
      (void)sb::receipt_from_deliver(d, r);
      (void)sb::mo_from_deliver(d);
    } else if (cmd == sb::smpp_cmd::kSubmitSmResp) {
      (void)sb::parse_submit_sm_resp(pdu, id, err);
    } else {
      (void)sb::parse_bind_resp(pdu, id, err);
    }
  }
  sb::DeliveryReceipt r;
  (void)sb::parse_receipt_text(in, r);

  // 2. The bytes as the SMSC's stream after a successful bind, in chunks sized by byte 0.
  sb::SmppConfig cfg;
  cfg.system_id = "fuzz";
  cfg.window = 3;
  Host host;
  sb::Outbox out;
  {
    sb::SmppSession s(cfg, host, out);
    s.on_connected(1);
    s.on_data(header(21, sb::smpp_cmd::kBindTransceiverResp, 0, 1) + std::string("SMSC", 5), 1);
    size_t chunk = size > 0 ? (data[0] % 23) + 1 : 1;
    uint64_t now = 2;
    while (!in.empty() && !s.wants_close()) {
      std::string_view c = in.substr(0, chunk);
      in.remove_prefix(c.size());
      s.on_data(c, now);
      now += 1000;
      if (s.deadline_ms() != 0 && s.deadline_ms() <= now) s.on_timer(now);
    }
    s.force_close("fuzz end", false, now);
  }
  host.check_settled();
  return 0;
}
