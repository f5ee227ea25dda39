#include "sms/smpp_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>

#include "sms/smsc_bytes.h"

namespace sb {
namespace {

using test::pdu;
using test::Sent;

struct Outcome {
  uint64_t cookie;
  SmsVerdict verdict;
  uint32_t status;
  std::string text;
  bool throttled;
  std::vector<std::string> ids;
};

// The host: a queue of messages; records every outcome and checks "exactly once".
class Host : public SmppHost {
 public:
  void add(std::string to, std::string text) {
    auto m = std::make_unique<SmsMessage>();
    tos_.push_back(std::move(to));
    texts_.push_back(std::move(text));
    m->cookie = msgs_.size() + 1;
    msgs_.push_back(std::move(m));
    queue_.push_back(msgs_.back().get());
  }
  Next next_message(SmsMessage*& out) override {
    if (queue_.empty()) return done_when_empty ? Next::kDone : Next::kWait;
    out = queue_.front();
    queue_.pop_front();
    out->to = tos_[out->cookie - 1];
    out->text = texts_[out->cookie - 1];
    ++handed_;
    return Next::kMessage;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    EXPECT_EQ(++calls_[m.cookie], 1) << "two outcomes for message " << m.cookie;
    outcomes.push_back({m.cookie, o.verdict, o.status, std::string(o.text), o.throttled,
                        std::vector<std::string>(o.message_ids.begin(), o.message_ids.end())});
  }
  void on_receipt(const DeliveryReceipt& r) override { receipts.push_back(r); }
  void on_mobile_originated(const MobileOriginated& mo) override { mos.push_back(mo); }

  bool all_settled() const { return outcomes.size() == handed_; }
  size_t handed() const { return handed_; }

  bool done_when_empty = true;
  std::vector<Outcome> outcomes;
  std::vector<DeliveryReceipt> receipts;
  std::vector<MobileOriginated> mos;

 private:
  std::vector<std::unique_ptr<SmsMessage>> msgs_;
  std::vector<std::string> tos_, texts_;
  std::deque<SmsMessage*> queue_;
  std::map<uint64_t, int> calls_;
  size_t handed_ = 0;
};

class SmppSessionTest : public ::testing::Test {
 protected:
  SmppSessionTest() {
    cfg.system_id = "user";
    cfg.password = "secret";
    cfg.source_addr = "Shop";
    cfg.window = 10;
  }
  // A driver closes its session before destroying it (the destructor asserts that every
  // message handed out has had its outcome).
  ~SmppSessionTest() override {
    if (s != nullptr) s->force_close("test over", false, now);
  }
  SmppSession& start() {
    s = std::make_unique<SmppSession>(cfg, host, out);
    s->on_connected(now);
    return *s;
  }
  // What the session wrote since the last call.
  std::vector<Sent> sent() {
    auto v = test::split(out.flatten());
    out.clear();
    return v;
  }
  void feed(std::string_view bytes) { s->on_data(bytes, now); }
  // Binds: the session's bind_transceiver (seq 1) answered.
  void bind() {
    auto b = sent();
    ASSERT_EQ(b.size(), 1u);
    ASSERT_EQ(b[0].id, smpp_cmd::kBindTransceiver);
    feed(test::bind_resp(b[0].seq));
    ASSERT_TRUE(s->bound());
  }

  SmppConfig cfg;
  Host host;
  Outbox out;
  std::unique_ptr<SmppSession> s;
  uint64_t now = 1000;
};

TEST_F(SmppSessionTest, BindsSubmitsAndUnbinds) {
  host.add("+447911123456", "Hello");
  start();
  bind();
  EXPECT_EQ(s->smsc_system_id(), "SMSC");
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kSubmitSm);
  EXPECT_EQ(v[0].dest, "447911123456");
  EXPECT_EQ(v[0].source, "Shop");
  EXPECT_EQ(v[0].source_ton, 5);  // alphanumeric
  EXPECT_EQ(v[0].short_message, "Hello");
  EXPECT_EQ(v[0].registered, 1);
  EXPECT_EQ(v[0].data_coding, 0);
  feed(test::submit_resp(v[0].seq, 0, "m1"));
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kSent);
  EXPECT_EQ(host.outcomes[0].ids, std::vector<std::string>{"m1"});
  auto u = sent();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].id, smpp_cmd::kUnbind);
  feed(pdu(smpp_cmd::kUnbindResp, 0, u[0].seq));
  EXPECT_TRUE(s->wants_close());
  EXPECT_EQ(s->end().cause, SmppEndCause::kNone);
}

TEST_F(SmppSessionTest, BindRefusedStopsWithTheProvidersReason) {
  host.add("+447911123456", "Hello");
  start();
  auto b = sent();
  feed(test::bind_resp(b[0].seq, 0x0E));
  EXPECT_TRUE(s->wants_close());
  EXPECT_TRUE(s->fatal());
  EXPECT_EQ(s->end().cause, SmppEndCause::kBindRefused);
  EXPECT_EQ(s->end().status, 0x0Eu);
  EXPECT_NE(s->end().text.find("ESME_RINVPASWD"), std::string::npos) << s->end().text;
  EXPECT_EQ(s->end().text.find("secret"), std::string::npos);
  EXPECT_EQ(host.handed(), 0u);  // nothing was handed out before the bind
  EXPECT_FALSE(s->bind_reached());
}

TEST_F(SmppSessionTest, ABindResponseWithAnUnreadableBodyStillBinds) {
  host.add("+447911123456", "a");
  start();
  std::string tlvs;
  for (int i = 0; i < 40; ++i) tlvs += test::tlv(0x1400, "v");
  feed(pdu(smpp_cmd::kBindTransceiverResp, 0, sent()[0].seq, test::cstr("SMSC") + tlvs));
  EXPECT_TRUE(s->bound());
  EXPECT_EQ(s->smsc_system_id(), "");
  EXPECT_EQ(sent().size(), 1u);
}

TEST_F(SmppSessionTest, BindThrottledIsTransient) {
  start();
  feed(test::bind_resp(sent()[0].seq, 0x58));
  EXPECT_TRUE(s->end().transient);
}

TEST_F(SmppSessionTest, WindowLimitsOutstandingSubmits) {
  cfg.window = 2;
  for (int i = 0; i < 5; ++i) host.add("+447911123456", "m" + std::to_string(i));
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(s->in_flight(), 2u);
  // Responses out of order are matched by sequence number.
  feed(test::submit_resp(v[1].seq, 0, "id-b"));
  auto w = sent();
  ASSERT_EQ(w.size(), 1u);
  feed(test::submit_resp(v[0].seq, 0, "id-a"));
  ASSERT_EQ(host.outcomes.size(), 2u);
  EXPECT_EQ(host.outcomes[0].cookie, 2u);
  EXPECT_EQ(host.outcomes[0].ids[0], "id-b");
  EXPECT_EQ(host.outcomes[1].ids[0], "id-a");
  EXPECT_EQ(s->in_flight(), 2u);
}

TEST_F(SmppSessionTest, AKeepAliveDoesNotTakeAWindowSlot) {
  cfg.window = 1;
  cfg.enquire_link_ms = 1000;
  cfg.response_timeout_ms = 5000;
  host.add("+447911123456", "a");
  host.add("+447911123456", "b");
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  now += 1000;
  s->on_timer(now);
  auto e = sent();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].id, smpp_cmd::kEnquireLink);
  feed(test::submit_resp(v[0].seq, 0, "a1"));  // the enquire_link is still unanswered
  auto w = sent();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].short_message, "b");
  EXPECT_EQ(s->in_flight(), 1u);
}

TEST_F(SmppSessionTest, ConcatenationReferencesDifferAcrossSessions) {
  std::string text(200, 'r');
  host.add("+447911123456", text);
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 2u);
  s->force_close("reconnect", false, now);
  Host h2;
  h2.add("+447911123456", text);
  Outbox o2;
  SmppSession s2(cfg, h2, o2);
  s2.on_connected(now);
  o2.clear();
  s2.on_data(test::bind_resp(1), now);
  auto w = test::split(o2.flatten());
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(v[0].short_message[3], w[0].short_message[3]);
  s2.force_close("end", false, now);
}

TEST_F(SmppSessionTest, ThrottledIsDeferredWithPushBackAndAPause) {
  cfg.throttle_pause_ms = 500;
  host.add("+447911123456", "a");
  host.add("+447911123456", "b");
  cfg.window = 1;
  start();
  bind();
  auto v = sent();
  feed(test::submit_resp(v[0].seq, 0x58, ""));
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kDeferred);
  EXPECT_TRUE(host.outcomes[0].throttled);
  EXPECT_NE(host.outcomes[0].text.find("ESME_RTHROTTLED"), std::string::npos);
  EXPECT_TRUE(sent().empty());  // paused
  EXPECT_EQ(s->deadline_ms(), now + 500);
  now += 500;
  s->on_timer(now);
  auto w = sent();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].short_message, "b");
}

TEST_F(SmppSessionTest, QueueFullIsDeferredAndBadDestinationFailed) {
  host.add("+447911123456", "a");
  host.add("+447911123456", "b");
  cfg.throttle_pause_ms = 0;
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 2u);
  feed(test::submit_resp(v[0].seq, 0x14, ""));
  feed(test::submit_resp(v[1].seq, 0x0B, ""));
  ASSERT_EQ(host.outcomes.size(), 2u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kDeferred);
  EXPECT_TRUE(host.outcomes[0].throttled);
  EXPECT_EQ(host.outcomes[1].verdict, SmsVerdict::kFailed);
  EXPECT_FALSE(host.outcomes[1].throttled);
  EXPECT_NE(host.outcomes[1].text.find("ESME_RINVDSTADR"), std::string::npos);
}

TEST_F(SmppSessionTest, ConcatenatedPartsAreOneOutcome) {
  host.add("+447911123456", std::string(200, 'x'));
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 2u);
  for (const Sent& p : v) {
    EXPECT_EQ(p.esm_class, 0x40);
    ASSERT_EQ(p.short_message.size() > 6, true);
  }
  EXPECT_EQ(v[0].short_message.substr(0, 6).substr(0, 3), std::string("\x05\x00\x03", 3));
  EXPECT_EQ(v[0].short_message[3], v[1].short_message[3]);  // the same reference
  EXPECT_EQ(v[0].short_message[5], 1);
  EXPECT_EQ(v[1].short_message[5], 2);
  feed(test::submit_resp(v[0].seq, 0, "p1"));
  EXPECT_TRUE(host.outcomes.empty());
  feed(test::submit_resp(v[1].seq, 0, "p2"));
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kSent);
  EXPECT_EQ(host.outcomes[0].ids, (std::vector<std::string>{"p1", "p2"}));
}

TEST_F(SmppSessionTest, OnePartRefusedDecidesForTheMessage) {
  cfg.window = 1;
  host.add("+447911123456", std::string(400, 'x'));  // 3 parts
  host.add("+447911123456", "next");
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  feed(test::submit_resp(v[0].seq, 0, "p1"));
  v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].short_message[5], 2);
  cfg.throttle_pause_ms = 0;
  feed(test::submit_resp(v[0].seq, 0x58, ""));
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kDeferred);
  EXPECT_EQ(host.outcomes[0].ids, (std::vector<std::string>{"p1", "", ""}));
  // Part 3 is not sent: the message goes again whole; the next message goes.
  v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].short_message, "next");
}

TEST_F(SmppSessionTest, UcsTwoForTextOutsideGsm) {
  host.add("447911123456", "Zażółć 😀");
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].data_coding, 8);
  EXPECT_EQ(v[0].dest, "447911123456");
}

TEST_F(SmppSessionTest, UnencodableMessageFailsAtOnce) {
  host.add("+447911123456", "bad \xC3");
  host.add("not a number", "hi");
  host.add("+447911123456", "ok");
  start();
  bind();
  ASSERT_EQ(host.outcomes.size(), 2u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kFailed);
  EXPECT_NE(host.outcomes[0].text.find("UTF-8"), std::string::npos);
  EXPECT_EQ(host.outcomes[1].verdict, SmsVerdict::kFailed);
  EXPECT_EQ(sent().size(), 1u);
}

TEST_F(SmppSessionTest, ConnectionLostDefersEveryOpenMessageOnce) {
  for (int i = 0; i < 4; ++i) host.add("+447911123456", std::string(i == 0 ? 200 : 5, 'y'));
  start();
  bind();
  auto v = sent();
  ASSERT_EQ(v.size(), 5u);
  feed(test::submit_resp(v[0].seq, 0, "p1"));   // half of the concatenated message
  feed(test::submit_resp(v[2].seq, 0x0B, ""));  // failed for good
  s->on_closed("reset by peer", now);
  EXPECT_TRUE(s->wants_close());
  EXPECT_EQ(s->end().cause, SmppEndCause::kConnectionLost);
  EXPECT_FALSE(s->fatal());
  EXPECT_TRUE(host.all_settled());
  ASSERT_EQ(host.outcomes.size(), 4u);
  int deferred = 0;
  for (const Outcome& o : host.outcomes) {
    if (o.verdict == SmsVerdict::kDeferred) {
      ++deferred;
      EXPECT_NE(o.text.find("reset by peer"), std::string::npos);
    }
  }
  EXPECT_EQ(deferred, 3);
}

TEST_F(SmppSessionTest, ReceiptsAndStopAreReportedAndAnswered) {
  host.done_when_empty = false;
  start();
  bind();
  feed(test::receipt(77, "447911123456", "m1", "DELIVRD"));
  feed(test::deliver_sm(78, "447911123456", "Shop", 0, 0, "STOP"));
  auto v = sent();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].id, smpp_cmd::kDeliverSmResp);
  EXPECT_EQ(v[0].seq, 77u);
  EXPECT_EQ(v[0].status, 0u);
  EXPECT_EQ(v[1].seq, 78u);
  ASSERT_EQ(host.receipts.size(), 1u);
  EXPECT_EQ(host.receipts[0].id, "m1");
  EXPECT_EQ(host.receipts[0].state, ReceiptState::kDelivered);
  EXPECT_EQ(host.receipts[0].phone, "447911123456");
  ASSERT_EQ(host.mos.size(), 1u);
  EXPECT_TRUE(host.mos[0].is_stop());
  EXPECT_FALSE(s->wants_close());
}

TEST_F(SmppSessionTest, AMalformedDeliverSmIsRefusedForGood) {
  host.done_when_empty = false;
  start();
  bind();
  feed(pdu(smpp_cmd::kDeliverSm, 0, 9, "abc"));
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kDeliverSmResp);
  EXPECT_EQ(v[0].status, 0x65u);
  EXPECT_FALSE(s->wants_close());
}

TEST_F(SmppSessionTest, EnquireLinkBothWays) {
  cfg.enquire_link_ms = 30000;
  cfg.response_timeout_ms = 5000;
  host.done_when_empty = false;
  start();
  bind();
  feed(pdu(smpp_cmd::kEnquireLink, 0, 500));
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kEnquireLinkResp);
  EXPECT_EQ(v[0].seq, 500u);
  EXPECT_EQ(s->deadline_ms(), now + 30000);
  now += 30000;
  s->on_timer(now);
  v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kEnquireLink);
  feed(pdu(smpp_cmd::kEnquireLinkResp, 0, v[0].seq));
  EXPECT_FALSE(s->wants_close());
  // Unanswered: the link is dead.
  now += 30000;
  s->on_timer(now);
  ASSERT_EQ(sent().size(), 1u);
  now += 5000;
  s->on_timer(now);
  EXPECT_TRUE(s->wants_close());
  EXPECT_EQ(s->end().cause, SmppEndCause::kTimeout);
  EXPECT_NE(s->end().text.find("enquire_link_resp"), std::string::npos);
}

TEST_F(SmppSessionTest, SubmitTimeoutDefers) {
  cfg.response_timeout_ms = 5000;
  host.add("+447911123456", "a");
  start();
  bind();
  sent();
  now += 5000;
  s->on_timer(now);
  EXPECT_EQ(s->end().cause, SmppEndCause::kTimeout);
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kDeferred);
}

TEST_F(SmppSessionTest, GenericNackAndStrayResponses) {
  host.add("+447911123456", "a");
  host.add("+447911123456", "b");
  start();
  bind();
  auto v = sent();
  feed(pdu(smpp_cmd::kGenericNack, 0x58, v[0].seq));
  ASSERT_EQ(host.outcomes.size(), 1u);
  EXPECT_EQ(host.outcomes[0].verdict, SmsVerdict::kDeferred);
  EXPECT_TRUE(host.outcomes[0].throttled);
  // A response to nothing we sent: out of step, the open message is deferred.
  feed(test::submit_resp(999, 0, "x"));
  EXPECT_TRUE(s->wants_close());
  EXPECT_EQ(s->end().cause, SmppEndCause::kProtocolError);
  EXPECT_TRUE(host.all_settled());
}

TEST_F(SmppSessionTest, SmscUnbindIsAnsweredAndDefersOpenMessages) {
  host.add("+447911123456", "a");
  start();
  bind();
  sent();
  feed(pdu(smpp_cmd::kUnbind, 0, 42));
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kUnbindResp);
  EXPECT_EQ(v[0].seq, 42u);
  EXPECT_EQ(s->end().cause, SmppEndCause::kUnbound);
  EXPECT_EQ(host.outcomes.at(0).verdict, SmsVerdict::kDeferred);
}

TEST_F(SmppSessionTest, UnknownRequestsGetGenericNack) {
  host.done_when_empty = false;
  start();
  bind();
  feed(pdu(0x00000103, 0, 7, std::string(20, 'x')));  // data_sm
  auto v = sent();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].id, smpp_cmd::kGenericNack);
  EXPECT_EQ(v[0].status, smpp_status::kInvCmdId);
}

TEST_F(SmppSessionTest, GarbageIsAProtocolError) {
  host.add("+447911123456", "a");
  start();
  bind();
  sent();
  feed(std::string("\x00\x00\x00\x05garbage.........", 20));
  EXPECT_EQ(s->end().cause, SmppEndCause::kProtocolError);
  EXPECT_TRUE(host.all_settled());
}

TEST_F(SmppSessionTest, ForceCloseDefers) {
  host.add("+447911123456", "a");
  start();
  bind();
  s->force_close("run aborted", false, now);
  EXPECT_EQ(host.outcomes.at(0).verdict, SmsVerdict::kDeferred);
}

TEST_F(SmppSessionTest, SenderTonNpiFollowItsForm) {
  struct Case {
    const char* sender;
    uint8_t ton, npi;
    const char* wire;
  };
  for (Case c : {Case{"+447911123456", 1, 1, "447911123456"}, Case{"12345", 3, 0, "12345"},
                 Case{"Shop", 5, 0, "Shop"}, Case{"", 0, 0, ""}}) {
    SmppConfig k = cfg;
    k.source_addr = c.sender;
    Host h;
    h.add("+447911123456", "a");
    Outbox o;
    SmppSession x(k, h, o);
    x.on_connected(now);
    std::string_view bind_seq = "";
    (void)bind_seq;
    o.clear();
    x.on_data(test::bind_resp(1), now);
    auto v = test::split(o.flatten());
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].source_ton, c.ton) << c.sender;
    EXPECT_EQ(v[0].source_npi, c.npi) << c.sender;
    EXPECT_EQ(v[0].source, c.wire);
    x.force_close("end", false, now);
  }
}

TEST(SmppConfig, ProblemsNameTheKey) {
  SmppConfig c;
  EXPECT_EQ(smpp_config_problem(c).rfind("system_id", 0), 0u);
  c.system_id = "user";
  EXPECT_EQ(smpp_config_problem(c), "");
  c.password = "123456789";
  EXPECT_EQ(smpp_config_problem(c).rfind("password", 0), 0u);
  c.password = "12345678";
  c.source_addr = "AVeryLongSender";
  EXPECT_EQ(smpp_config_problem(c).rfind("sender", 0), 0u);
  c.source_addr = "+4479111234567";
  EXPECT_EQ(smpp_config_problem(c), "");
  c.window = 0;
  EXPECT_EQ(smpp_config_problem(c).rfind("window", 0), 0u);
}

// The whole dialogue with the SMSC's bytes fed one at a time, then every step's bytes split
// in two at every position: the outcome is the same.
struct Script {
  std::vector<Outcome> outcomes;
  size_t receipts = 0, mos = 0;
  std::vector<std::string> wire;
  SmppEndCause end;
};

Script run_script(size_t split, bool bytewise) {
  SmppConfig cfg;
  cfg.system_id = "user";
  cfg.password = "pw";
  cfg.source_addr = "Shop";
  cfg.window = 3;
  cfg.throttle_pause_ms = 0;
  Host host;
  host.add("+447911123456", "one");
  host.add("+447911123457", std::string(170, 'c'));  // two parts
  host.add("+447911123458", "three €");
  Outbox out;
  SmppSession s(cfg, host, out);
  Script r;
  s.on_connected(1);
  auto feed = [&](const std::string& b) {
    if (bytewise) {
      for (char c : b) s.on_data(std::string_view(&c, 1), 2);
    } else {
      size_t k = std::min(split, b.size());
      s.on_data(std::string_view(b).substr(0, k), 2);
      s.on_data(std::string_view(b).substr(k), 2);
    }
  };
  // Sequence numbers are the session's: 1 bind, 2..5 submits, then unbind.
  feed(test::bind_resp(1));
  feed(test::submit_resp(2, 0, "a") + test::receipt(900, "447911123456", "a", "DELIVRD"));
  feed(test::submit_resp(3, 0, "b1") + pdu(smpp_cmd::kEnquireLink, 0, 901));
  feed(test::submit_resp(4, 0x58, ""));
  feed(test::submit_resp(5, 0, "c") + test::deliver_sm(902, "447911123457", "Shop", 0, 0, "Stop"));
  feed(pdu(smpp_cmd::kUnbindResp, 0, 6));
  r.outcomes = host.outcomes;
  r.receipts = host.receipts.size();
  r.mos = host.mos.size();
  // The PDUs sent, in order of kind and sequence: when a response goes out relative to the next
  // submit_sm depends on how the bytes arrived, nothing else does.
  for (const Sent& p : test::split(out.flatten())) {
    r.wire.push_back(std::to_string(p.id) + "/" + std::to_string(p.seq) + "/" +
                     std::to_string(p.status) + "/" + std::to_string(p.body.size()));
  }
  std::sort(r.wire.begin(), r.wire.end());
  r.end = s.wants_close() ? s.end().cause : SmppEndCause::kProtocolError;
  return r;
}

TEST(SmppSessionSplit, EveryByteAndEverySplitGiveTheSameDialogue) {
  Script whole = run_script(1 << 20, false);
  ASSERT_EQ(whole.outcomes.size(), 3u);
  EXPECT_EQ(whole.outcomes[0].verdict, SmsVerdict::kSent);
  EXPECT_EQ(whole.outcomes[1].verdict, SmsVerdict::kDeferred);  // part 2 throttled
  EXPECT_EQ(whole.outcomes[2].verdict, SmsVerdict::kSent);
  EXPECT_EQ(whole.receipts, 1u);
  EXPECT_EQ(whole.mos, 1u);
  EXPECT_EQ(whole.end, SmppEndCause::kNone);
  auto check = [&](const Script& x, const std::string& label) {
    ASSERT_EQ(x.outcomes.size(), whole.outcomes.size()) << label;
    for (size_t i = 0; i < x.outcomes.size(); ++i) {
      EXPECT_EQ(x.outcomes[i].cookie, whole.outcomes[i].cookie) << label;
      EXPECT_EQ(x.outcomes[i].verdict, whole.outcomes[i].verdict) << label;
      EXPECT_EQ(x.outcomes[i].ids, whole.outcomes[i].ids) << label;
    }
    EXPECT_EQ(x.receipts, whole.receipts) << label;
    EXPECT_EQ(x.mos, whole.mos) << label;
    EXPECT_EQ(x.wire, whole.wire) << label;
    EXPECT_EQ(x.end, whole.end) << label;
  };
  EXPECT_EQ(whole.wire.size(),
            9u);  // bind, 4 submit_sm, 2 deliver_sm_resp, enquire_link_resp, unbind
  check(run_script(0, true), "one byte at a time");
  for (size_t k = 0; k < 200; ++k) check(run_script(k, false), "split at " + std::to_string(k));
}

}  // namespace
}  // namespace sb
