// SMS lists (issue 19): a phone column as the recipient key, normalised by the caller's
// function, refused values failed with the reason, duplicates found after normalisation.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "store/task_store.h"
#include "store/temp_dir.h"

namespace sb {
namespace {

// A stand-in for libphonenumber: digits only; a leading 0 becomes the context's prefix.
Result<std::string> fake_e164(std::string_view v, const void* ctx) {
  std::string digits;
  for (char c : v) {
    if (c >= '0' && c <= '9') digits += c;
  }
  if (digits.size() < 6) return make_error(ErrDomain::kInput, "too short");
  if (v.substr(0, 1) == "+") return "+" + digits;
  if (digits[0] == '0') return std::string(static_cast<const char*>(ctx)) + digits.substr(1);
  return make_error(ErrDomain::kInput, "no country");
}

std::vector<std::pair<std::string, int>> rows_of(const std::string& path) {
  sqlite3* db = nullptr;
  std::vector<std::pair<std::string, int>> out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return out;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT email, status FROM recipients ORDER BY id", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                     sqlite3_column_int(st, 1));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST(PhoneImport, NormalisesDeduplicatesAndFailsInvalidNumbers) {
  test::TempDir dir;
  const std::string path = dir.file("task.db");
  {
    auto t = TaskStore::open(path, true);
    ASSERT_TRUE(t.ok()) << t.error().describe();
    ImportOptions o;
    o.key_column = "Phone";
    o.normalize = fake_e164;
    o.normalize_ctx = "+44";
    auto r = (*t)->import_csv_buffer(
        "name,phone\nAnn,07700 900123\nBob,+44 7700 900123\nCy,123\nDi,+4915112345678\n",
        "list.csv", o);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->imported, 2u);
    EXPECT_EQ(r->duplicates, 1u);
    EXPECT_EQ(r->invalid, 1u);
    ASSERT_EQ(r->problems.size(), 2u);
    EXPECT_NE(r->problems[0].find("duplicate of line 2"), std::string::npos);
    EXPECT_NE(r->problems[1].find("invalid number: too short"), std::string::npos);
    EXPECT_EQ((*t)->field_names(), std::vector<std::string>{"name"});
    auto ch = (*t)->get_meta("sb.channel");
    ASSERT_TRUE(ch.ok());
    ASSERT_TRUE(ch->has_value());
    EXPECT_EQ(**ch, "sms");
  }
  auto rows = rows_of(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], std::make_pair(std::string("+447700900123"), 0));
  EXPECT_EQ(rows[1], std::make_pair(std::string("123"), 3));  // failed, with its reason
  EXPECT_EQ(rows[2], std::make_pair(std::string("+4915112345678"), 0));
}

TEST(PhoneImport, MissingPhoneColumnNamesIt) {
  test::TempDir dir;
  auto t = TaskStore::open(dir.file("task.db"), true);
  ASSERT_TRUE(t.ok());
  ImportOptions o;
  o.key_column = "mobile";
  o.normalize = fake_e164;
  o.normalize_ctx = "+44";
  auto r = (*t)->import_csv_buffer("name,phone\nAnn,07700900123\n", "list.csv", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no 'mobile' column"), std::string::npos);
  auto e = (*t)->get_meta("sb.channel");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value());
}

}  // namespace
}  // namespace sb
