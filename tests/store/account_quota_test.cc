// Account quota store: shared by two handles on one file, give-back, resume time, bad state.
#include "store/account_quota.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>
#include <vector>

#include "store/temp_dir.h"

namespace sb {
namespace {

constexpr uint64_t kNow = 1'800'000'000'000;  // wall ms
constexpr uint64_t kDay = 24ull * 3600 * 1000;

TEST(AccountQuota, TwoHandlesShareOneAccountsLimit) {
  test::TempDir d;
  std::string path = d.file("sub/dir/quota.db");  // parents are created
  auto a = AccountQuota::open(path);
  auto b = AccountQuota::open(path);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  auto g1 = (*a)->reserve("relay u@x", 10, 7, kNow);
  ASSERT_TRUE(g1.ok());
  EXPECT_EQ(g1->granted, 7u);
  auto g2 = (*b)->reserve("relay u@x", 10, 7, kNow + 1000);
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(g2->granted, 3u);  // the other handle's 7 count
  EXPECT_EQ(g2->used, 10u);
  auto g3 = (*b)->reserve("relay u@x", 10, 1, kNow + 2000);
  ASSERT_TRUE(g3.ok());
  EXPECT_EQ(g3->granted, 0u);
  // Free again once the first minute has left the rolling 24 h.
  EXPECT_GE(g3->resume_at, kNow + kDay - 60'000);
  EXPECT_LE(g3->resume_at, kNow + kDay + 60'000);
  // Another account is counted apart.
  auto other = (*a)->reserve("relay v@x", 10, 10, kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->granted, 10u);
}

TEST(AccountQuota, GiveBackFreesWhatWasNotSent) {
  test::TempDir d;
  auto q = AccountQuota::open(d.file("q.db"));
  ASSERT_TRUE(q.ok());
  ASSERT_EQ((*q)->reserve("a", 5, 5, kNow)->granted, 5u);
  ASSERT_TRUE((*q)->give_back("a", kNow, 2, kNow + 10).ok());
  auto used = (*q)->used("a", kNow + 20);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(used.value(), 3u);
  EXPECT_EQ((*q)->reserve("a", 5, 5, kNow + 30)->granted, 2u);
  auto none = (*q)->used("nobody", kNow);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), 0u);
}

TEST(AccountQuota, ConcurrentReservationsNeverExceedTheLimit) {
  test::TempDir d;
  std::string path = d.file("q.db");
  ASSERT_TRUE(AccountQuota::open(path).ok());
  std::vector<uint64_t> got(4, 0);
  std::vector<std::thread> ts;
  for (size_t i = 0; i < got.size(); ++i) {
    ts.emplace_back([&, i] {
      auto q = AccountQuota::open(path);
      if (!q.ok()) return;
      for (int k = 0; k < 50; ++k) {
        auto g = (*q)->reserve("shared", 100, 3, kNow + static_cast<uint64_t>(k));
        if (g.ok()) got[i] += g->granted;
      }
    });
  }
  for (auto& t : ts) t.join();
  uint64_t total = 0;
  for (uint64_t n : got) total += n;
  EXPECT_EQ(total, 100u);
}

TEST(AccountQuota, UnreadableStateIsAnErrorNotAFreshCount) {
  test::TempDir d;
  std::string path = d.file("q.db");
  {
    auto q = AccountQuota::open(path);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE((*q)->reserve("a", 5, 1, kNow).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE account_quota SET state='garbage'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto q = AccountQuota::open(path);
  ASSERT_TRUE(q.ok());
  auto g = (*q)->reserve("a", 5, 1, kNow);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("account a"), std::string::npos) << g.error().message;
}

TEST(AccountQuota, NotAQuotaFileIsNamed) {
  test::TempDir d;
  std::string p = d.write("junk.db", std::string(4096, 'x'));
  auto q = AccountQuota::open(p);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().message.find(p), std::string::npos) << q.error().message;
}

}  // namespace
}  // namespace sb
