#include "sms/smpp_pdu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "sms/smsc_bytes.h"

namespace sb {
namespace {

using test::cstr;
using test::pdu;

TEST(SmppPdu, ReaderCutsPdusSplitAnywhere) {
  std::string stream = test::bind_resp(1) + test::submit_resp(2, 0, "abc") + pdu(0x15, 0, 9);
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    PduReader r;
    std::vector<PduHeader> got;
    for (size_t off = 0; off < stream.size(); off += chunk) {
      std::string_view in = std::string_view(stream).substr(off, chunk);
      PduHeader h;
      std::string_view p;
      while (r.next(in, h, p)) {
        EXPECT_EQ(p.size(), h.length);
        got.push_back(h);
      }
      EXPECT_TRUE(in.empty());
    }
    ASSERT_EQ(got.size(), 3u) << chunk;
    EXPECT_EQ(got[0].command_id, smpp_cmd::kBindTransceiverResp);
    EXPECT_EQ(got[1].seq, 2u);
    EXPECT_EQ(got[2].command_id, smpp_cmd::kEnquireLink);
    EXPECT_FALSE(r.failed());
  }
}

TEST(SmppPdu, ReaderRefusesImpossibleLengths) {
  for (uint32_t len : {0u, 15u, kMaxPduSize + 1}) {
    PduReader r;
    std::string s;
    test::put32(s, len);
    s += std::string(12, '\0');
    std::string_view in = s;
    PduHeader h;
    std::string_view p;
    EXPECT_FALSE(r.next(in, h, p));
    EXPECT_TRUE(r.failed()) << len;
    EXPECT_NE(r.error().find("command_length"), std::string::npos);
  }
}

TEST(SmppPdu, PacksBindTransceiver) {
  std::string out;
  ASSERT_TRUE(pack_bind_transceiver(1, {"user", "secret", "", "", 1, 1}, out));
  EXPECT_EQ(out, pdu(0x00000009, 0, 1,
                     cstr("user") + cstr("secret") + cstr("") + "\x34\x01\x01" + cstr("")));
  out.clear();
  EXPECT_FALSE(pack_bind_transceiver(1, {"user", "too-long-password", "", "", 0, 0}, out));
}

TEST(SmppPdu, PacksSubmitSm) {
  std::string out;
  SubmitParams p;
  p.source_addr = "Shop";
  p.source_ton = 5;
  p.dest_addr = "447911123456";
  p.short_message = "Hi";
  ASSERT_TRUE(pack_submit_sm(7, p, out));
  auto sent = test::split(out);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].seq, 7u);
  EXPECT_EQ(sent[0].source, "Shop");
  EXPECT_EQ(sent[0].source_ton, 5);
  EXPECT_EQ(sent[0].dest, "447911123456");
  EXPECT_EQ(sent[0].short_message, "Hi");
  EXPECT_EQ(sent[0].registered, 1);
  // 159 octets: a GSM part with its UDH.
  std::string part(159, 'x');
  p.short_message = part;
  out.clear();
  ASSERT_TRUE(pack_submit_sm(8, p, out));
  EXPECT_EQ(test::split(out)[0].short_message.size(), 159u);
}

TEST(SmppPdu, PacksHeaderOnlyPdus) {
  std::string out;
  pack_enquire_link(3, out);
  pack_enquire_link_resp(4, out);
  pack_unbind(5, out);
  pack_unbind_resp(6, out);
  pack_generic_nack(7, 3, out);
  pack_deliver_sm_resp(8, 0, out);
  EXPECT_EQ(out, pdu(0x15, 0, 3) + pdu(0x80000015, 0, 4) + pdu(6, 0, 5) + pdu(0x80000006, 0, 6) +
                     pdu(0x80000000, 3, 7) + pdu(0x80000005, 0, 8, cstr("")));
  // A status the library does not know still goes out.
  out.clear();
  pack_generic_nack(9, 0x401, out);
  EXPECT_EQ(out, pdu(0x80000000, 0x401, 9));
}

TEST(SmppPdu, ParsesResponses) {
  std::string id, err;
  ASSERT_TRUE(parse_submit_sm_resp(test::submit_resp(2, 0, "msg-42"), id, err)) << err;
  EXPECT_EQ(id, "msg-42");
  ASSERT_TRUE(parse_bind_resp(test::bind_resp(1, 0, "ACME"), id, err)) << err;
  EXPECT_EQ(id, "ACME");
  // The sc_interface_version TLV.
  ASSERT_TRUE(
      parse_bind_resp(pdu(0x80000009, 0, 1, cstr("ACME") + test::tlv(0x0210, "\x34")), id, err))
      << err;
  // A message_id without its terminator is malformed, and not read past.
  EXPECT_FALSE(parse_submit_sm_resp(pdu(0x80000004, 0, 2, "abc"), id, err));
  EXPECT_NE(err.find("submit_sm_resp"), std::string::npos);
}

TEST(SmppPdu, ParsesDeliverSmWithTlvs) {
  DeliverSm d;
  std::string err;
  std::string tlvs = test::tlv(0x001E, cstr("XYZ")) + test::tlv(0x0427, "\x02");
  ASSERT_TRUE(parse_deliver_sm(
      test::deliver_sm(5, "447911123456", "Shop", 0x04, 0, "id:XYZ stat:DELIVRD err:000", tlvs), d,
      err))
      << err;
  EXPECT_TRUE(d.is_receipt());
  EXPECT_EQ(d.source_addr, "447911123456");
  EXPECT_EQ(d.receipted_id, "XYZ");
  EXPECT_EQ(d.message_state, 2);
  // message_payload instead of short_message.
  ASSERT_TRUE(parse_deliver_sm(
      test::deliver_sm(6, "447911123456", "Shop", 0, 0, "", test::tlv(0x0424, "STOP")), d, err))
      << err;
  EXPECT_EQ(d.short_message, "STOP");
  EXPECT_FALSE(d.is_receipt());
}

TEST(SmppPdu, ManyTlvsNeverReachTheLibrary) {
  // The library's 2 KB trace would overflow: refused before it is called.
  std::string tlvs;
  for (int i = 0; i < 200; ++i) tlvs += test::tlv(0x0204, "\x00\x01");
  DeliverSm d;
  std::string err;
  EXPECT_FALSE(parse_deliver_sm(test::deliver_sm(5, "1", "2", 0, 0, "x", tlvs), d, err));
  EXPECT_NE(err.find("deliver_sm"), std::string::npos);
  std::string id;
  EXPECT_FALSE(parse_bind_resp(pdu(0x80000009, 0, 1, cstr("A") + tlvs), id, err));
}

TEST(SmppPdu, ReceiptText) {
  DeliveryReceipt r;
  ASSERT_TRUE(
      parse_receipt_text("id:0123456789 sub:001 dlvrd:001 submit date:2612031200 done "
                         "date:2612031201 stat:DELIVRD err:000 text:Hello id:fake",
                         r));
  EXPECT_EQ(r.id, "0123456789");
  EXPECT_EQ(r.state, ReceiptState::kDelivered);
  EXPECT_EQ(r.stat, "DELIVRD");
  EXPECT_EQ(r.err, "000");
  EXPECT_EQ(r.submit_date, "2612031200");
  EXPECT_EQ(r.done_date, "2612031201");
  EXPECT_EQ(r.text, "Hello id:fake");
  struct Case {
    const char* stat;
    ReceiptState s;
    bool final;
  };
  for (Case c : {Case{"UNDELIV", ReceiptState::kUndeliverable, true},
                 Case{"EXPIRED", ReceiptState::kExpired, true},
                 Case{"REJECTD", ReceiptState::kRejected, true},
                 Case{"DELETED", ReceiptState::kDeleted, true},
                 Case{"ENROUTE", ReceiptState::kEnroute, false},
                 Case{"ACCEPTD", ReceiptState::kAccepted, false},
                 Case{"bogus", ReceiptState::kUnknown, false}}) {
    DeliveryReceipt x;
    ASSERT_TRUE(parse_receipt_text(std::string("ID:9 Stat:") + c.stat + " err:001", x));
    EXPECT_EQ(x.state, c.s) << c.stat;
    EXPECT_EQ(receipt_final(x.state), c.final) << c.stat;
  }
  DeliveryReceipt none;
  EXPECT_FALSE(parse_receipt_text("Hello there", none));
}

TEST(SmppPdu, ReceiptTlvsWin) {
  DeliverSm d;
  d.esm_class = 0x04;
  d.source_addr = "447911123456";
  d.short_message = "id:OLD stat:ENROUTE";
  d.receipted_id = "NEW";
  d.message_state = 5;
  DeliveryReceipt r;
  ASSERT_TRUE(receipt_from_deliver(d, r));
  EXPECT_EQ(r.id, "NEW");
  EXPECT_EQ(r.state, ReceiptState::kUndeliverable);
  EXPECT_EQ(r.phone, "447911123456");
}

TEST(SmppPdu, MobileOriginatedStop) {
  DeliverSm d;
  d.source_addr = "447911123456";
  d.dest_addr = "Shop";
  for (const char* t : {"STOP", "stop", " Stop. ", "STOPALL", "Unsubscribe", "stopp"}) {
    d.short_message = t;
    EXPECT_TRUE(mo_from_deliver(d).is_stop()) << t;
  }
  for (const char* t : {"Don't stop", "STOP IT", "hello", ""}) {
    d.short_message = t;
    EXPECT_FALSE(mo_from_deliver(d).is_stop()) << t;
  }
  d.data_coding = 8;
  d.short_message = std::string("\0S\0T\0O\0P", 8);
  MobileOriginated mo = mo_from_deliver(d);
  EXPECT_EQ(mo.text, "STOP");
  EXPECT_EQ(mo.from, "447911123456");
  EXPECT_TRUE(mo.is_stop());
}

TEST(SmppPdu, MessageIdsMatchAcrossHexAndDecimal) {
  EXPECT_TRUE(smpp_ids_match("abc123", "ABC123"));
  EXPECT_TRUE(smpp_ids_match("1A2B", "6699"));  // 0x1A2B == 6699
  EXPECT_TRUE(smpp_ids_match("6699", "1a2b"));
  EXPECT_TRUE(smpp_ids_match("00ff", "255"));
  EXPECT_FALSE(smpp_ids_match("1A2B", "6700"));
  EXPECT_FALSE(smpp_ids_match("", ""));
  EXPECT_FALSE(smpp_ids_match("msg-1", "msg-2"));
  EXPECT_FALSE(smpp_ids_match("ffffffffffffffffff", "1"));  // too large for either reading
}

// libsmpp34 keeps its trace in globals: the lock in smpp_pdu.cc lets worker threads use it at
// once (this is the case a ThreadSanitizer build checks).
TEST(SmppPdu, PacksAndParsesFromManyThreads) {
  std::string deliver = test::receipt(5, "447911123456", "m1", "DELIVRD");
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        DeliverSm d;
        std::string err, out, id;
        if (!parse_deliver_sm(deliver, d, err) || d.source_addr != "447911123456") ++bad;
        if (!parse_submit_sm_resp(test::submit_resp(2, 0, "x"), id, err) || id != "x") ++bad;
        SubmitParams p;
        p.dest_addr = "447911123456";
        p.short_message = "hi";
        if (!pack_submit_sm(static_cast<uint32_t>(i + 1), p, out)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(SmppPdu, StatusText) {
  EXPECT_EQ(smpp_status_text(0x58), "ESME_RTHROTTLED (0x00000058)");
  EXPECT_EQ(smpp_status_text(0x401), "status 0x00000401");
}

}  // namespace
}  // namespace sb
