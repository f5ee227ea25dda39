// Suppression list: file format, matching rules, errors with line numbers, a large list.
#include "store/suppression.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "store/temp_dir.h"

namespace sb {
namespace {

TEST(SuppressionTest, MatchesAddressesAndExactDomains) {
  SuppressionList list;
  ASSERT_TRUE(list.load_buffer("# bounced last month\n"
                               "Alice@Example.COM\n"
                               "\n"
                               "   @Blocked.Example  \n"
                               "\t# indented comment\n"
                               "bob@example.org\n",
                               "suppress.txt")
                  .ok());
  EXPECT_EQ(list.size(), 3u);
  struct Case {
    const char* address;
    bool suppressed;
  } cases[] = {
      {"alice@example.com", true},
      {"ALICE@EXAMPLE.COM", true},  // whole address compared lower-cased
      {"alice@example.co", false},
      {"alice2@example.com", false},
      {"x@blocked.example", true},  // @domain, any case
      {"Y@BLOCKED.EXAMPLE", true},
      {"z@sub.blocked.example", false},  // exact domain only, no subdomains
      {"z@blocked.example.com", false},
      {"z@notblocked.example", false},
      {"bob@example.org", true},
      {"bob@example.org.", false},
      {"", false},
      {"@blocked.example", true},
      {"alice@example.com\nbob@example.org", false},
  };
  for (const auto& c : cases) EXPECT_EQ(list.suppressed(c.address), c.suppressed) << c.address;
}

TEST(SuppressionTest, CrlfBomAndNoFinalNewline) {
  SuppressionList list;
  ASSERT_TRUE(list.load_buffer("\xEF\xBB\xBF"
                               "a@x.com\r\n# c\r\n\r\n@y.org\r\nlast@z.net",
                               "f")
                  .ok());
  EXPECT_EQ(list.size(), 3u);
  EXPECT_TRUE(list.suppressed("a@x.com"));
  EXPECT_TRUE(list.suppressed("q@y.org"));
  EXPECT_TRUE(list.suppressed("last@z.net"));
  EXPECT_FALSE(list.suppressed("a@x.com\r"));
}

TEST(SuppressionTest, KeysOfAnSmsTaskMatchWhole) {
  SuppressionList list;
  ASSERT_TRUE(list.load_keys("+447911123456\n+49301234567\n+447911123456\n", "stop.txt").ok());
  EXPECT_EQ(list.size(), 2u);  // a number listed twice counts once
  EXPECT_TRUE(list.suppressed("+447911123456"));
  EXPECT_TRUE(list.suppressed("+49301234567"));
  EXPECT_FALSE(list.suppressed("+4479111234567"));
  EXPECT_FALSE(list.suppressed("+44791112345"));
  // Not checked as addresses, and files of both kinds accumulate.
  ASSERT_TRUE(list.load_buffer("a@x.com\n", "f").ok());
  EXPECT_TRUE(list.suppressed("a@x.com"));
  EXPECT_TRUE(list.suppressed("+447911123456"));
}

TEST(SuppressionTest, BadLinesNameFileAndLine) {
  struct Case {
    std::string data;
    std::string message;
  } cases[] = {
      {"a@x.com\n# ok\n\nfoo\n", "suppress.txt line 4: 'foo' is not an address or @domain"},
      {"a@b@x.com\n", "suppress.txt line 1: 'a@b@x.com' is not an address or @domain"},
      {"ok@x.com\r\nuser@\r\n", "suppress.txt line 2: 'user@' is not an address or @domain"},
      {"@\n", "suppress.txt line 1: '@' is not an address or @domain"},
      {"john doe@x.com\n", "suppress.txt line 1: 'john doe@x.com' is not an address or @domain"},
      {"a@x.com # note\n", "suppress.txt line 1: 'a@x.com # note' is not an address or @domain"},
      {"email\na@x.com\n", "suppress.txt line 1: 'email' is not an address or @domain"},
      {"a\x01@x.com\n", "suppress.txt line 1: 'a\\x01@x.com' is not an address or @domain"},
  };
  for (const auto& c : cases) {
    SuppressionList list;
    Status s = list.load_buffer(c.data, "suppress.txt");
    ASSERT_FALSE(s.ok()) << c.data;
    EXPECT_EQ(s.error().domain, ErrDomain::kInput);
    EXPECT_EQ(s.error().message, c.message);
    EXPECT_EQ(list.size(), 0u);
  }
}

TEST(SuppressionTest, FailedLoadLeavesEarlierEntries) {
  SuppressionList list;
  ASSERT_TRUE(list.load_buffer("a@x.com\n", "one").ok());
  EXPECT_FALSE(list.load_buffer("b@x.com\nnope\n", "two").ok());
  EXPECT_EQ(list.size(), 1u);
  EXPECT_TRUE(list.suppressed("a@x.com"));
  EXPECT_FALSE(list.suppressed("b@x.com"));
}

TEST(SuppressionTest, FilesAccumulateAndRepeatsCountOnce) {
  test::TempDir dir;
  std::string one = dir.write("one.txt", "a@x.com\nA@X.com\n@d.org\n");
  std::string two = dir.write("two.txt", "a@x.com\nb@y.com\n@D.ORG\n");
  SuppressionList list;
  ASSERT_TRUE(list.load_file(one).ok());
  EXPECT_EQ(list.size(), 2u);
  ASSERT_TRUE(list.load_file(two).ok());
  EXPECT_EQ(list.size(), 3u);
  for (const char* a : {"a@x.com", "b@y.com", "q@d.org"}) EXPECT_TRUE(list.suppressed(a)) << a;
  EXPECT_FALSE(list.suppressed("c@x.com"));
}

TEST(SuppressionTest, MissingFileAndDirectoryAreErrors) {
  test::TempDir dir;
  SuppressionList list;
  Status s = list.load_file(dir.file("nope.txt"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("nope.txt"), std::string::npos);
  EXPECT_NE(s.error().message.find("No such file"), std::string::npos);
  s = list.load_file(dir.file(""));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("directory"), std::string::npos);
}

TEST(SuppressionTest, EmptyFileAndCommentsOnly) {
  SuppressionList list;
  ASSERT_TRUE(list.load_buffer("", "e").ok());
  ASSERT_TRUE(list.load_buffer("# nothing\n\n  \n", "c").ok());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_FALSE(list.suppressed("a@x.com"));
}

TEST(SuppressionTest, HundredThousandEntriesFoundOthersNot) {
  constexpr int kN = 100000;
  std::string data;
  for (int i = 0; i < kN; ++i) {
    data += "User" + std::to_string(i) + "@Host" + std::to_string(i % 977) + ".example\n";
    if (i % 1000 == 0) data += "@dom" + std::to_string(i) + ".test\n";
  }
  test::TempDir dir;
  std::string path = dir.write("big.txt", data);
  SuppressionList list;
  ASSERT_TRUE(list.load_file(path).ok());
  EXPECT_EQ(list.size(), static_cast<size_t>(kN + kN / 1000));
  int found = 0;
  int false_hits = 0;
  for (int i = 0; i < kN; ++i) {
    std::string h = "@host" + std::to_string(i % 977) + ".example";
    found += list.suppressed("user" + std::to_string(i) + h);
    false_hits += list.suppressed("user" + std::to_string(i + kN) + h);
    false_hits += list.suppressed("user" + std::to_string(i) + "@other.example");
  }
  EXPECT_EQ(found, kN);
  EXPECT_EQ(false_hits, 0);
  EXPECT_TRUE(list.suppressed("anyone@dom5000.test"));
  EXPECT_FALSE(list.suppressed("anyone@dom5001.test"));
}

TEST(SuppressionTest, ConcurrentLookupsAfterLoad) {
  std::string data;
  for (int i = 0; i < 20000; ++i) data += "u" + std::to_string(i) + "@x.com\n";
  SuppressionList list;
  ASSERT_TRUE(list.load_buffer(std::move(data), "t").ok());
  std::vector<int> found(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40000; ++i)
        found[t] += list.suppressed("u" + std::to_string(i) + "@x.com");
    });
  }
  for (auto& th : threads) th.join();
  for (int f : found) EXPECT_EQ(f, 20000);
}

}  // namespace
}  // namespace sb
