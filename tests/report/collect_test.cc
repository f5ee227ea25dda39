// Tests for collect_report: a small task and accounting log, aggregated as the page shows them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "report/report.h"
#include "store/accounting.h"
#include "store/task_store.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1714566896;  // 2024-05-01 12:34:56 UTC

class CollectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sb-report-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    task_ = (dir_ / "t.db").string();
    auto st = TaskStore::open(task_, true);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto imp = (*st)->import_csv_buffer(
        "email,name\na@x.test,A\nb@x.test,B\nc@y.test,C\nd@z.test,D\ne@x.test,E\nbad,F\n", "list");
    ASSERT_TRUE(imp.ok()) << imp.error().message;
    std::vector<RecipientRow> rows;
    ASSERT_TRUE((*st)->claim(0, 10, rows).ok());
    ASSERT_EQ(rows.size(), 5u);
    // a, b sent at t0; c failed at t0+1; d deferred at t0+100; e left unsent.
    std::vector<Outcome> out = {{rows[0].id, RcptStatus::kSent, 250, "ok", 1, kT0},
                                {rows[1].id, RcptStatus::kSent, 250, "ok", 1, kT0},
                                {rows[2].id, RcptStatus::kFailed, 550, "<script>", 1, kT0 + 1},
                                {rows[3].id, RcptStatus::kDeferred, 451, "later", 2, kT0 + 100}};
    ASSERT_TRUE((*st)->record(out).ok());
    ASSERT_TRUE((*st)->set_meta("sender", "s@example.test").ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_log(const std::string& name) {
    std::string text;
    auto add = [&](int64_t t, const char* rcpt, RcptStatus s, int code, const char* cat) {
      AccountingRecord r;
      r.time_ms = t * 1000 + 5;
      r.recipient = rcpt;
      r.status = s;
      r.code = code;
      r.category = cat;
      if (name.ends_with(".csv")) {
        format_accounting_csv(r, text);
      } else {
        format_accounting_jsonl(r, text);
      }
    };
    if (name.ends_with(".csv")) {
      text =
          "time,recipient,status,code,enhanced_code,reply,remote_host,remote_port,"
          "tls_version,attempt,connection_id,elapsed_ms,category\n";
    }
    add(kT0, "a@x.test", RcptStatus::kSent, 250, "");
    add(kT0, "b@x.test", RcptStatus::kSent, 250, "");
    add(kT0 + 1, "c@y.test", RcptStatus::kFailed, 550, "invalid-recipient");
    add(kT0 + 2, "d@z.test", RcptStatus::kDeferred, 451, "rate-limit");
    add(kT0 + 100, "d@z.test", RcptStatus::kDeferred, 451, "rate-limit");
    text += "{\"cut\n";  // a line a killed run left half-written
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  static uint64_t total(const ReportData& d, size_t outcome) {
    uint64_t n = 0;
    for (const OutcomeCounts& b : d.buckets) n += b[outcome];
    return n;
  }

  fs::path dir_;
  std::string task_;
};

TEST_F(CollectTest, FromTheTask) {
  auto d = collect_report({task_});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->status.total, 6u);
  EXPECT_EQ(d->status.get(RcptStatus::kFailed), 2u);  // c, and "bad" rejected at import
  EXPECT_EQ(d->first_s, kT0);
  EXPECT_EQ(d->last_s, kT0 + 100);
  EXPECT_EQ(d->axis.bucket_s, 1);
  EXPECT_EQ(d->axis.count, 101u);
  EXPECT_EQ(total(*d, kOutSent), 2u);
  EXPECT_EQ(total(*d, kOutFailed), 1u);
  EXPECT_EQ(total(*d, kOutDeferred), 1u);
  EXPECT_EQ(d->buckets[0][kOutSent], 2u);
  ASSERT_EQ(d->destinations.size(), 3u);
  EXPECT_EQ(d->destinations[0].name, "x.test");
  EXPECT_EQ(d->destinations[0].sent, 2u);
  EXPECT_EQ(d->destination_count, 3u);
  EXPECT_EQ(d->other.sent + d->other.deferred + d->other.failed, 0u);
  // As `status --json` counts them (every recipient but the unsent), by count then label:
  // 250 x2, then 451, 550 and "none" (the address rejected at import) once each.
  ASSERT_EQ(d->codes.size(), 4u);
  EXPECT_EQ(d->codes[0], (std::pair<std::string, uint64_t>{"250", 2}));
  bool sender = false;
  for (auto& [k, v] : d->settings) sender |= k == "sender" && v == "s@example.test";
  EXPECT_TRUE(sender);
}

TEST_F(CollectTest, TopNPutsTheRestUnderOther) {
  ReportOptions o{task_};
  o.top_destinations = 1;
  auto d = collect_report(o);
  ASSERT_TRUE(d.ok()) << d.error().message;
  ASSERT_EQ(d->destinations.size(), 1u);
  EXPECT_EQ(d->other.failed, 1u);
  EXPECT_EQ(d->other.deferred, 1u);
  EXPECT_EQ(d->other.sent, 0u);
}

TEST_F(CollectTest, FromTheAccountingLogCsvAndJsonl) {
  for (const char* name : {"a.csv", "a.jsonl"}) {
    SCOPED_TRACE(name);
    ReportOptions o{task_, write_log(name)};
    auto d = collect_report(o);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(d->attempts, 5u);
    EXPECT_EQ(d->skipped_lines, 1u);
    EXPECT_EQ(total(*d, kOutSent), 2u);
    EXPECT_EQ(total(*d, kOutDeferred), 2u);
    EXPECT_EQ(total(*d, kOutFailed), 1u);
    EXPECT_EQ(d->first_s, kT0);
    EXPECT_EQ(d->last_s, kT0 + 100);
    ASSERT_FALSE(d->classes.empty());
    EXPECT_EQ(d->classes[0], (std::pair<std::string, uint64_t>{"rate-limit", 2}));
    ASSERT_EQ(d->destinations.size(), 3u);
    EXPECT_EQ(d->destinations[0].name, "x.test");
    std::string html = render_report_html(*d);
    EXPECT_EQ(html.find("<script"), std::string::npos);
  }
}

TEST_F(CollectTest, ErrorsNameTheFile) {
  auto missing = collect_report({(dir_ / "none.db").string()});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("none.db"), std::string::npos);
  auto log = collect_report({task_, (dir_ / "gone.csv").string()});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("gone.csv"), std::string::npos);
  auto ext = collect_report({task_, (dir_ / "t.db").string()});
  ASSERT_FALSE(ext.ok());
  EXPECT_NE(ext.error().message.find(".csv or .jsonl"), std::string::npos);
}

}  // namespace
}  // namespace sb
