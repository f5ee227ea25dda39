// Accounting log: CSV quoting, JSONL escaping (parsed back), header once, appends, errors.
#include "store/accounting.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "store/temp_dir.h"

namespace sb {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

AccountingRecord sample() {
  AccountingRecord r;
  r.time_ms = 1714566896789;  // 2024-05-01T12:34:56.789Z
  r.recipient = "alice@example.com";
  r.status = RcptStatus::kFailed;
  r.code = 550;
  r.reply = "5.1.1 <alice@example.com>: Recipient address rejected";
  r.remote_host = "mx1.example.com";
  r.remote_port = 25;
  r.tls_version = "TLSv1.3";
  r.attempt = 2;
  r.connection_id = 17;
  r.elapsed_ms = 123;
  r.category = "invalid-recipient";
  return r;
}

TEST(AccountingTest, EnhancedStatusCode) {
  struct Case {
    const char* text;
    const char* code;
  } cases[] = {
      {"2.0.0 Ok: queued as 4F1", "2.0.0"},
      {"5.1.1 <a@b>: Recipient address rejected", "5.1.1"},
      {"4.7.1 Try again later", "4.7.1"},
      {"550 5.7.1 Relaying denied", "5.7.1"},  // a leading reply code is skipped
      {"451-4.3.0 busy", "4.3.0"},
      {"5.7.26", "5.7.26"},
      {"5.123.999 long parts", "5.123.999"},
      {"5.1234.1 too long", ""},
      {"3.1.1 bad class", ""},
      {"5.1 too short", ""},
      {"5.1.1x", ""},
      {"Ok", ""},
      {"", ""},
      {"queued 2.0.0", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(enhanced_status_code(c.text), c.code) << c.text;
}

TEST(AccountingTest, CsvLineAndQuoting) {
  std::string out;
  format_accounting_csv(sample(), out);
  EXPECT_EQ(out,
            "2024-05-01T12:34:56.789Z,alice@example.com,failed,550,5.1.1,"
            "5.1.1 <alice@example.com>: Recipient address rejected,mx1.example.com,25,TLSv1.3,"
            "2,17,123,invalid-recipient\n");

  struct Case {
    std::string reply;
    std::string field;  // as it appears in the CSV line
  } cases[] = {
      {"a, b", "\"a, b\""},
      {"say \"hi\"", "\"say \"\"hi\"\"\""},
      {"line one\r\nline two", "line one line two"},  // one line per record
      {"a\nb,c", "\"a b,c\""},
      {"tab\there", "tab here"},
      {" lead", "\" lead\""},
      {"bad \xff octet", "bad ? octet"},
      {"", ""},
  };
  for (const auto& c : cases) {
    AccountingRecord r = sample();
    r.reply = c.reply;
    out.clear();
    format_accounting_csv(r, out);
    EXPECT_EQ(out.find('\n'), out.size() - 1) << c.reply;
    std::string want = ",failed,550,," + c.field + ",mx1.example.com,";
    EXPECT_NE(out.find(want), std::string::npos) << out;
  }
}

TEST(AccountingTest, ReplyCappedAt512WithoutSplittingUtf8) {
  AccountingRecord r = sample();
  r.reply = std::string(511, 'x') + "\xC3\xA9" + std::string(100, 'y');  // é straddles 512
  std::string out;
  format_accounting_jsonl(r, out);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["reply"].get<std::string>(), std::string(511, 'x'));
}

TEST(AccountingTest, JsonlParsesBack) {
  AccountingRecord r = sample();
  r.reply = "5.2.2 \"quota\" \\ exceeded\r\n\x01 caf\xC3\xA9 \xFF";
  r.status = RcptStatus::kDeferred;
  r.code = 452;
  std::string out;
  format_accounting_jsonl(r, out);
  ASSERT_EQ(out.back(), '\n');
  ASSERT_EQ(out.find('\n'), out.size() - 1);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["time"], "2024-05-01T12:34:56.789Z");
  EXPECT_EQ(j["recipient"], "alice@example.com");
  EXPECT_EQ(j["status"], "deferred");
  EXPECT_EQ(j["code"], 452);
  EXPECT_EQ(j["enhanced_code"], "5.2.2");
  EXPECT_EQ(j["reply"], "5.2.2 \"quota\" \\ exceeded  caf\xC3\xA9 ?");  // CR LF ^A -> one space
  EXPECT_EQ(j["remote_host"], "mx1.example.com");
  EXPECT_EQ(j["remote_port"], 25);
  EXPECT_EQ(j["tls_version"], "TLSv1.3");
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["connection_id"], 17);
  EXPECT_EQ(j["elapsed_ms"], 123);
  EXPECT_EQ(j["category"], "invalid-recipient");
}

TEST(AccountingTest, TimeBeforeTheEpochAndMilliseconds) {
  AccountingRecord r = sample();
  r.time_ms = -1;
  std::string out;
  format_accounting_jsonl(r, out);
  EXPECT_EQ(nlohmann::json::parse(out)["time"], "1969-12-31T23:59:59.999Z");
  r.time_ms = 5;
  out.clear();
  format_accounting_csv(r, out);
  EXPECT_EQ(out.substr(0, 24), "1970-01-01T00:00:00.005Z");
}

TEST(AccountingTest, ExtensionPicksFormat) {
  test::TempDir dir;
  struct Case {
    const char* name;
    bool ok;
  } cases[] = {{"a.csv", true}, {"b.CSV", true}, {"c.jsonl", true}, {"d.JSONL", true},
               {"e.json", false}, {"f.txt", false}, {"csv", false}, {"g.csv.bak", false}};
  for (const auto& c : cases) {
    auto log = AccountingLog::open(dir.file(c.name));
    EXPECT_EQ(log.ok(), c.ok) << c.name;
    if (!log.ok()) {
      EXPECT_EQ(log.error().domain, ErrDomain::kConfig);
      EXPECT_NE(log.error().message.find(".csv or .jsonl"), std::string::npos);
    }
  }
  auto missing = AccountingLog::open(dir.file("no/such/dir.csv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no/such/dir.csv"), std::string::npos);
}

TEST(AccountingTest, CsvHeaderOnlyOnceAcrossOpensAndAppends) {
  test::TempDir dir;
  std::string path = dir.file("acct.csv");
  for (int run = 0; run < 2; ++run) {
    auto log = AccountingLog::open(path);
    ASSERT_TRUE(log.ok()) << log.error().describe();
    AccountingRecord r = sample();
    r.attempt = static_cast<uint32_t>(run + 1);
    (*log)->add(r);
    EXPECT_GT((*log)->buffered(), 0u);
    ASSERT_TRUE((*log)->flush().ok());
    EXPECT_EQ((*log)->buffered(), 0u);
  }
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "time,recipient,status,code,enhanced_code,reply,remote_host,remote_port,tls_version,"
            "attempt,connection_id,elapsed_ms,category");
  EXPECT_NE(lines[1].find(",TLSv1.3,1,17,123"), std::string::npos);
  EXPECT_NE(lines[2].find(",TLSv1.3,2,17,123"), std::string::npos);
}

TEST(AccountingTest, JsonlAppendsAndRepairsATornLastLine) {
  test::TempDir dir;
  // A previous run killed mid-write left half a line.
  std::string path = dir.write("acct.jsonl", "{\"time\":\"2024-05-01T00:00:00.000Z\",\"recip");
  {
    auto log = AccountingLog::open(path);
    ASSERT_TRUE(log.ok());
    (*log)->add(sample());
    AccountingRecord s = sample();
    s.status = RcptStatus::kSuppressed;
    s.code = 0;
    s.reply = "suppressed by suppress.txt";
    s.remote_host.clear();
    s.remote_port = 0;
    s.tls_version.clear();
    (*log)->add(s);
    // No explicit flush: the destructor writes what is buffered.
  }
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_FALSE(nlohmann::json::accept(lines[0]));
  auto a = nlohmann::json::parse(lines[1]);
  auto b = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(a["status"], "failed");
  EXPECT_EQ(b["status"], "suppressed");
  EXPECT_EQ(b["remote_host"], "");
  EXPECT_EQ(b["enhanced_code"], "");
  EXPECT_EQ(b["tls_version"], "");
}

TEST(AccountingTest, WriteErrorIsReturnedAndKept) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  test::TempDir dir;
  std::string path = dir.file("full.csv");
  std::filesystem::create_symlink("/dev/full", path);
  auto log = AccountingLog::open(path);
  ASSERT_TRUE(log.ok()) << log.error().describe();
  (*log)->add(sample());
  size_t pending = (*log)->buffered();
  Status s = (*log)->flush();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().domain, ErrDomain::kSys);
  EXPECT_NE(s.error().message.find("full.csv"), std::string::npos);
  EXPECT_NE(s.error().message.find("No space left"), std::string::npos);
  EXPECT_EQ((*log)->buffered(), pending);  // kept for a retry
}

}  // namespace
}  // namespace sb
