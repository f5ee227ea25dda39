// SMS receipts applied to a task (parts, multi-part, odd ids, duplicates) and STOP suppression.
#include "store/sms_receipts.h"

#include <gtest/gtest.h>

#include "store/sms_ids.h"
#include "store/suppression.h"
#include "store/task_store.h"

namespace sb {
namespace {

class SmsReceiptsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = TaskStore::open(":memory:", true);
    ASSERT_TRUE(st.ok());
    t_ = std::move(st).value();
    ImportOptions o;
    o.key_column = "phone";
    o.normalize = [](std::string_view v, const void*) -> Result<std::string> {
      return std::string(v);
    };
    ASSERT_TRUE(t_->import_csv_buffer("phone\n+447911000001\n+447911000002\n+447911000003\n"
                                      "+447911000004\n",
                                      "l.csv", o)
                    .ok());
    db_ = sqlite_handle(*t_);
    // Recipients 1..3 sent; 4 left unsent.
    std::vector<RecipientRow> rows;
    ASSERT_TRUE(t_->claim(0, 3, rows, true).ok());
    std::vector<Outcome> out;
    for (auto& r : rows) out.push_back({r.id, RcptStatus::kSent, 0, "ok", 1, 1});
    ASSERT_TRUE(t_->record(out).ok());
    ASSERT_EQ(rows.size(), 3u);
    ASSERT_EQ(t_->counts()->get(RcptStatus::kSent), 3u);
  }

  RcptStatus status(int64_t id) {
    for (RcptStatus s :
         {RcptStatus::kUnsent, RcptStatus::kSent, RcptStatus::kSuppressed, RcptStatus::kDelivered,
          RcptStatus::kUndeliverable, RcptStatus::kExpired}) {
      auto l = t_->list(s, 100);
      for (auto& [row, o] : *l) {
        if (row.id == id) return s;
      }
    }
    return RcptStatus::kInFlight;
  }

  SmsReceiptApplied apply(std::string id, std::string state, std::string stat = "") {
    auto a = apply_sms_receipt(db_, {std::move(id), std::move(state), std::move(stat), "000", 5});
    EXPECT_TRUE(a.ok()) << a.error().message;
    return a.ok() ? *a : SmsReceiptApplied{};
  }

  std::unique_ptr<TaskStore> t_;
  sqlite3* db_ = nullptr;
};

TEST_F(SmsReceiptsTest, SinglePartDeliveredThenDuplicate) {
  ASSERT_TRUE(record_sms_ids(db_, 1, {"m1"}).ok());
  auto a = apply("m1", "delivered", "DELIVRD");
  EXPECT_EQ(a.effect, SmsReceiptEffect::kSettled);
  EXPECT_EQ(a.rcpt_id, 1);
  EXPECT_EQ(status(1), RcptStatus::kDelivered);
  EXPECT_EQ(apply("m1", "delivered").effect, SmsReceiptEffect::kDuplicate);
  // A late ENROUTE does not undo a final state.
  EXPECT_EQ(apply("m1", "enroute").effect, SmsReceiptEffect::kDuplicate);
  EXPECT_EQ(status(1), RcptStatus::kDelivered);
  auto l = t_->list(RcptStatus::kDelivered, 10);
  EXPECT_EQ((*l)[0].second.reply, "receipt stat:DELIVRD err:000");
}

TEST_F(SmsReceiptsTest, UnknownIdIsCountedNotAnError) {
  EXPECT_EQ(apply("nope", "delivered").effect, SmsReceiptEffect::kUnknownId);
  ASSERT_TRUE(record_sms_ids(db_, 1, {"m1"}).ok());
  EXPECT_EQ(apply("nope", "delivered").effect, SmsReceiptEffect::kUnknownId);
  EXPECT_EQ(apply("", "delivered").effect, SmsReceiptEffect::kUnknownId);
}

TEST_F(SmsReceiptsTest, MultiPartIsDeliveredWhenEveryPartIs) {
  ASSERT_TRUE(record_sms_ids(db_, 2, {"a1", "a2", "a3"}).ok());
  EXPECT_EQ(apply("a1", "delivered").effect, SmsReceiptEffect::kRecorded);
  EXPECT_EQ(apply("a3", "delivered").effect, SmsReceiptEffect::kRecorded);
  EXPECT_EQ(status(2), RcptStatus::kSent);
  EXPECT_EQ(apply("a2", "enroute").effect, SmsReceiptEffect::kRecorded);
  EXPECT_EQ(status(2), RcptStatus::kSent);
  EXPECT_EQ(apply("a2", "delivered").effect, SmsReceiptEffect::kSettled);
  EXPECT_EQ(status(2), RcptStatus::kDelivered);
}

TEST_F(SmsReceiptsTest, OneUndeliverablePartMakesTheRecipientUndeliverable) {
  ASSERT_TRUE(record_sms_ids(db_, 2, {"a1", "a2"}).ok());
  apply("a1", "delivered");
  EXPECT_EQ(apply("a2", "undeliverable", "UNDELIV").effect, SmsReceiptEffect::kSettled);
  EXPECT_EQ(status(2), RcptStatus::kUndeliverable);
  ASSERT_TRUE(record_sms_ids(db_, 3, {"b1"}).ok());
  apply("b1", "expired", "EXPIRED");
  EXPECT_EQ(status(3), RcptStatus::kExpired);
}

TEST_F(SmsReceiptsTest, RejectedAndDeletedCountAsUndeliverable) {
  ASSERT_TRUE(record_sms_ids(db_, 1, {"r1"}).ok());
  ASSERT_TRUE(record_sms_ids(db_, 2, {"d1"}).ok());
  apply("r1", "rejected", "REJECTD");
  apply("d1", "deleted", "DELETED");
  EXPECT_EQ(status(1), RcptStatus::kUndeliverable);
  EXPECT_EQ(status(2), RcptStatus::kUndeliverable);
}

TEST_F(SmsReceiptsTest, AResentPartIsDeliveredByEitherCopy) {
  // Part 2 was not accepted the first time and was sent again alone (its new id only).
  ASSERT_TRUE(record_sms_ids(db_, 2, {"x1", ""}).ok());
  ASSERT_TRUE(record_sms_ids(db_, 2, {"", "x2b"}).ok());
  apply("x1", "delivered");
  EXPECT_EQ(status(2), RcptStatus::kSent);
  apply("x2b", "delivered");
  EXPECT_EQ(status(2), RcptStatus::kDelivered);
}

TEST_F(SmsReceiptsTest, IdsMatchAcrossHexDecimalCaseAndPadding) {
  ASSERT_TRUE(record_sms_ids(db_, 1, {"1F4A"}).ok());  // submit_sm_resp in hex
  EXPECT_EQ(apply("8010", "delivered").rcpt_id, 1);    // receipt in decimal
  ASSERT_TRUE(record_sms_ids(db_, 2, {"12345"}).ok());
  EXPECT_EQ(apply("3039", "delivered").rcpt_id, 2);  // hex of 12345
  ASSERT_TRUE(record_sms_ids(db_, 3, {"abc-def"}).ok());
  EXPECT_EQ(apply("ABC-DEF", "delivered").rcpt_id, 3);
  EXPECT_EQ(apply("0000abc", "delivered").effect, SmsReceiptEffect::kUnknownId);
}

TEST_F(SmsReceiptsTest, ARecipientNotSentIsNotSettledByAReceipt) {
  // Recipient 4 is unsent (e.g. reset after the ids were recorded): the part is recorded only.
  ASSERT_TRUE(record_sms_ids(db_, 4, {"u1"}).ok());
  EXPECT_EQ(apply("u1", "delivered").effect, SmsReceiptEffect::kRecorded);
  EXPECT_EQ(status(4), RcptStatus::kUnsent);
}

TEST_F(SmsReceiptsTest, ReceiptStatusesAreNotOutcomesARunRecords) {
  EXPECT_FALSE(t_->record({{1, RcptStatus::kDelivered, 0, "", 1, 1}}).ok());
  EXPECT_STREQ(status_name(RcptStatus::kUndeliverable), "undeliverable");
}

TEST_F(SmsReceiptsTest, StopSuppressesTheUnsentNumberOnce) {
  auto a = add_task_suppression(db_, "+447911000004", "STOP", 9);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->added);
  EXPECT_EQ(a->recipients, 1u);
  EXPECT_EQ(status(4), RcptStatus::kSuppressed);
  auto again = add_task_suppression(db_, "+447911000004", "STOP", 10);
  EXPECT_FALSE(again->added);
  EXPECT_EQ(again->recipients, 0u);
  // A number already sent stays sent; one not in the task is still listed.
  EXPECT_EQ(add_task_suppression(db_, "+447911000001", "STOP")->recipients, 0u);
  EXPECT_EQ(status(1), RcptStatus::kSent);
  EXPECT_TRUE(add_task_suppression(db_, "+4915112345678", "UNSUBSCRIBE")->added);
  auto keys = task_suppressions(db_);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, (std::vector<std::string>{"+447911000004", "+447911000001", "+4915112345678"}));
}

TEST(SmsTaskSuppression, EmptyWithoutTheTable) {
  auto st = TaskStore::open(":memory:", true);
  auto keys = task_suppressions(sqlite_handle(**st));
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
}

}  // namespace
}  // namespace sb
