// The task store's returned-mail part: bounced/complained states, soft counts, idempotence.
#include <gtest/gtest.h>

#include "store/task_store.h"

namespace sb {
namespace {

std::unique_ptr<TaskStore> task_with(int n) {
  auto st = TaskStore::open(":memory:", true);
  EXPECT_TRUE(st.ok());
  std::string csv = "email\n";
  for (int i = 1; i <= n; ++i) csv += "u" + std::to_string(i) + "@example.com\n";
  EXPECT_TRUE((*st)->import_csv_buffer(csv, "list.csv").ok());
  return std::move(st).value();
}

ReturnRecord rec(std::string key, int64_t id, ReturnEffect e) {
  ReturnRecord r;
  r.key = std::move(key);
  r.id = id;
  r.effect = e;
  r.status = e == ReturnEffect::kSoft ? "4.2.2" : "5.1.1";
  r.diagnostic = "550 5.1.1 user unknown";
  r.cls = e == ReturnEffect::kSoft ? "soft" : "hard";
  r.category = e == ReturnEffect::kSoft ? "mailbox-full" : "invalid-recipient";
  r.kind = "dsn";
  r.result = "recorded";
  r.time = 1000;
  return r;
}

TEST(ReturnsStore, HardBounceOnceAndIdempotent) {
  auto t = task_with(3);
  auto a = t->record_return(rec("k1", 2, ReturnEffect::kHard));
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_FALSE(a->duplicate);
  EXPECT_EQ(a->status, RcptStatus::kBounced);
  auto again = t->record_return(rec("k1", 2, ReturnEffect::kHard));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_TRUE(t->return_seen("k1").value());
  EXPECT_FALSE(t->return_seen("k2").value());
  auto rows = t->list(RcptStatus::kBounced, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].first.email, "u2@example.com");
  EXPECT_EQ((*rows)[0].second.code, 550);
  EXPECT_EQ((*rows)[0].second.reply, "5.1.1 hard/invalid-recipient: 550 5.1.1 user unknown");
  auto c = t->counts();
  EXPECT_EQ(c->get(RcptStatus::kBounced), 1u);
  // Bounced recipients are never claimed, and no reset makes them sendable.
  ASSERT_TRUE(t->reset(false).ok());
  std::vector<RecipientRow> claimed;
  ASSERT_TRUE(t->claim(0, 10, claimed).ok());
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].id, 1);
  EXPECT_EQ(claimed[1].id, 3);
  auto addrs = t->returned_addresses();
  ASSERT_EQ(addrs->size(), 1u);
  EXPECT_EQ((*addrs)[0], "u2@example.com");
}

TEST(ReturnsStore, SoftBouncesCountThenTurnHard) {
  auto t = task_with(1);
  for (int i = 0; i < 2; ++i) {
    ReturnRecord r = rec("s" + std::to_string(i), 1, ReturnEffect::kSoft);
    auto a = t->record_return(r);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->soft, static_cast<uint32_t>(i + 1));
    EXPECT_EQ(a->status, RcptStatus::kUnsent);
  }
  auto a = t->record_return(rec("s2", 1, ReturnEffect::kSoft));
  EXPECT_EQ(a->status, RcptStatus::kBounced);
  auto info = t->return_info(1);
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->soft, 3u);
  EXPECT_EQ((*info)->category, "repeated-soft");
}

TEST(ReturnsStore, ComplaintWinsAndUnknownIdIsAnErrorThatChangesNothing) {
  auto t = task_with(1);
  ASSERT_TRUE(t->record_return(rec("a", 1, ReturnEffect::kHard)).ok());
  auto c = t->record_return(rec("b", 1, ReturnEffect::kComplaint));
  EXPECT_EQ(c->status, RcptStatus::kComplained);
  auto h = t->record_return(rec("c", 1, ReturnEffect::kHard));
  EXPECT_EQ(h->status, RcptStatus::kComplained);
  auto bad = t->record_return(rec("d", 99, ReturnEffect::kHard));
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(t->return_seen("d").value());  // rolled back
  // An unmatched message is remembered without touching any recipient.
  auto u = t->record_return(rec("e", 0, ReturnEffect::kNone));
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(t->return_seen("e").value());
}

}  // namespace
}  // namespace sb
