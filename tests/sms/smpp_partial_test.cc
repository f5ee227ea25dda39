// Issue 19: a partly accepted concatenated message's retry sends only the missing parts, with
// the reference the accepted ones carried; odd receipt formats; STOP variants.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sms/smpp_session.h"
#include "sms/smsc_bytes.h"

namespace sb {
namespace {

using test::Sent;

// One message handed out once; its outcome and any receipts kept.
class OneHost : public SmppHost {
 public:
  Next next_message(SmsMessage*& out) override {
    if (msg == nullptr) return Next::kDone;
    out = msg;
    msg = nullptr;
    return Next::kMessage;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    ++outcomes;
    verdict = o.verdict;
    ids.assign(o.message_ids.begin(), o.message_ids.end());
    ref = m.concat_ref;
  }
  void on_receipt(const DeliveryReceipt& r) override { receipts.push_back(r); }
  void on_mobile_originated(const MobileOriginated& mo) override { (void)mo; }

  SmsMessage* msg = nullptr;
  int outcomes = 0;
  SmsVerdict verdict = SmsVerdict::kDeferred;
  std::vector<std::string> ids;
  uint8_t ref = 0;
  std::vector<DeliveryReceipt> receipts;
};

struct Dialog {
  SmppConfig cfg;
  OneHost host;
  Outbox out;
  std::unique_ptr<SmppSession> s;
  Dialog() {
    cfg.system_id = "u";
    cfg.password = "p";
    cfg.source_addr = "Shop";
    cfg.throttle_pause_ms = 0;
  }
  ~Dialog() {
    if (s) s->force_close("over", false, 1);
  }
  std::vector<Sent> sent() {
    auto v = test::split(out.flatten());
    out.clear();
    return v;
  }
  // Starts and binds; returns the PDUs sent once bound (the submits).
  std::vector<Sent> bind(SmsMessage* m) {
    host.msg = m;
    s = std::make_unique<SmppSession>(cfg, host, out);
    s->on_connected(1);
    auto b = sent();
    s->on_data(test::bind_resp(b.at(0).seq), 1);
    return sent();
  }
};

const std::string kText(400, 'x');  // three GSM parts

TEST(SmppPartial, ARetrySendsOnlyTheMissingPartWithTheSameReference) {
  SmsMessage first;
  first.to = "+447911123456";
  first.text = kText;
  std::vector<std::string> ids;
  uint8_t ref = 0;
  {
    Dialog r;
    auto v = r.bind(&first);
    ASSERT_EQ(v.size(), 3u);
    r.s->on_data(test::submit_resp(v[0].seq, 0, "p1"), 2);
    r.s->on_data(test::submit_resp(v[1].seq, 0x58, ""), 2);  // part 2 throttled
    r.s->on_data(test::submit_resp(v[2].seq, 0, "p3"), 2);
    ASSERT_EQ(r.host.outcomes, 1);
    EXPECT_EQ(r.host.verdict, SmsVerdict::kDeferred);
    EXPECT_EQ(r.host.ids, (std::vector<std::string>{"p1", "", "p3"}));
    ids = r.host.ids;
    ref = r.host.ref;
    EXPECT_EQ(static_cast<uint8_t>(v[0].short_message[3]), ref);
  }
  SmsMessage again;
  again.to = "+447911123456";
  again.text = kText;
  again.accepted_before = ids;
  again.concat_ref = ref;
  Dialog r;
  auto v = r.bind(&again);
  ASSERT_EQ(v.size(), 1u);  // part 2 only
  EXPECT_EQ(v[0].short_message.substr(0, 3), std::string("\x05\x00\x03", 3));
  EXPECT_EQ(static_cast<uint8_t>(v[0].short_message[3]), ref);
  EXPECT_EQ(v[0].short_message[4], 3);
  EXPECT_EQ(v[0].short_message[5], 2);
  r.s->on_data(test::submit_resp(v[0].seq, 0, "p2b"), 3);
  ASSERT_EQ(r.host.outcomes, 1);
  EXPECT_EQ(r.host.verdict, SmsVerdict::kSent);
  EXPECT_EQ(r.host.ids, (std::vector<std::string>{"p1", "p2b", "p3"}));
}

TEST(SmppPartial, NothingMissingIsSentAsItWas) {
  std::vector<std::string> ids{"a", "b", "c"};
  SmsMessage m;
  m.to = "+447911123456";
  m.text = kText;
  m.accepted_before = ids;
  m.concat_ref = 9;
  Dialog r;
  auto v = r.bind(&m);
  EXPECT_EQ(r.host.outcomes, 1);
  EXPECT_EQ(r.host.verdict, SmsVerdict::kSent);
  for (const Sent& p : v) EXPECT_NE(p.id, smpp_cmd::kSubmitSm);
}

TEST(SmppPartial, AChangedTextIsSentWholeWithANewReference) {
  std::vector<std::string> ids{"a", ""};  // two parts then; the text now has three
  SmsMessage m;
  m.to = "+447911123456";
  m.text = kText;
  m.accepted_before = ids;
  m.concat_ref = 200;
  Dialog r;
  auto v = r.bind(&m);
  ASSERT_EQ(v.size(), 3u);
  for (const Sent& p : v) EXPECT_EQ(p.short_message[4], 3);
}

// The retry's dialogue (bind, the missing part, its response, a receipt for it) is the same
// whatever way the SMSC's bytes are cut.
TEST(SmppPartial, RetryDialogueSplitAtEveryByte) {
  std::vector<std::string> ids{"p1", "", "p3"};
  auto run = [&](size_t cut, bool bytewise) {
    SmsMessage m;
    m.to = "+447911123456";
    m.text = kText;
    m.accepted_before = ids;
    m.concat_ref = 42;
    Dialog r;
    r.host.msg = &m;
    r.s = std::make_unique<SmppSession>(r.cfg, r.host, r.out);
    r.s->on_connected(1);
    auto b = r.sent();
    // The bind response, then (once the part went out) its submit_sm_resp (seq 2: the
    // session's next) and a receipt, each stream cut at `cut` or fed a byte at a time.
    auto feed = [&](const std::string& in) {
      if (bytewise) {
        for (char c : in) r.s->on_data(std::string_view(&c, 1), 2);
        return;
      }
      size_t k = std::min(cut, in.size());
      r.s->on_data(std::string_view(in).substr(0, k), 2);
      r.s->on_data(std::string_view(in).substr(k), 2);
    };
    feed(test::bind_resp(b.at(0).seq));
    feed(test::submit_resp(2, 0, "p2b") + test::receipt(7, "447911123456", "p2b", "DELIVRD"));
    auto wire = r.sent();
    std::vector<std::string> got = r.host.ids;
    EXPECT_EQ(r.host.outcomes, 1) << "cut " << cut << (bytewise ? " bytewise" : "");
    EXPECT_EQ(r.host.verdict, SmsVerdict::kSent);
    EXPECT_EQ(got, (std::vector<std::string>{"p1", "p2b", "p3"}));
    EXPECT_EQ(r.host.receipts.size(), 1u);
    if (!r.host.receipts.empty()) {
      EXPECT_EQ(r.host.receipts[0].id, "p2b");
    }
    // submit_sm (part 2), deliver_sm_resp, unbind.
    EXPECT_EQ(wire.size(), 3u);
    return wire.size();
  };
  run(0, true);
  for (size_t k = 0; k < 120; ++k) run(k, false);
}

TEST(SmscReceiptFormats, OddButCommonForms) {
  struct Case {
    const char* text;
    const char* id;
    ReceiptState state;
  };
  for (const Case& c : {
           // Keys upper case, dates with underscores, no text field.
           Case{"ID:abc123 SUB:001 DLVRD:001 SUBMIT_DATE:2612031200 DONE_DATE:2612031201 "
                "STAT:DELIVRD ERR:000",
                "abc123", ReceiptState::kDelivered},
           // Fields in another order, extra blanks.
           Case{"stat:UNDELIV  err:001  id:  77  ", "77", ReceiptState::kUndeliverable},
           // Long-form states some SMSCs write.
           Case{"id:9 stat:DELIVERED", "9", ReceiptState::kDelivered},
           Case{"id:9 stat:expired err:", "9", ReceiptState::kExpired},
           // The text field carrying look-alike keys does not override the real ones.
           Case{"id:1 stat:REJECTD err:0 text:stat:DELIVRD id:2", "1", ReceiptState::kRejected},
       }) {
    DeliveryReceipt r;
    ASSERT_TRUE(parse_receipt_text(c.text, r)) << c.text;
    EXPECT_EQ(r.id, c.id) << c.text;
    EXPECT_EQ(r.state, c.state) << c.text;
  }
}

TEST(SmscReceiptFormats, TlvsOnlyWithAnEmptyText) {
  DeliverSm d;
  d.esm_class = 0x04;
  d.receipted_id = "1F4A";
  d.message_state = 3;  // EXPIRED
  DeliveryReceipt r;
  ASSERT_TRUE(receipt_from_deliver(d, r));
  EXPECT_EQ(r.id, "1F4A");
  EXPECT_EQ(r.state, ReceiptState::kExpired);
}

TEST(SmscStop, VariantsAreTrimmedCaseInsensitiveAndBlankTolerant) {
  DeliverSm d;
  d.source_addr = "447911123456";
  for (const char* t :
       {"STOP ALL", "stop all", " Stop  All! ", "UNSUBSCRIBE\r\n", "STOP\nALL", "unsubscribe"}) {
    d.short_message = t;
    EXPECT_TRUE(mo_from_deliver(d).is_stop()) << t;
  }
  for (const char* t : {"STOP ALL NOW", "S TOP", "please stop"}) {
    d.short_message = t;
    EXPECT_FALSE(mo_from_deliver(d).is_stop()) << t;
  }
}

}  // namespace
}  // namespace sb
