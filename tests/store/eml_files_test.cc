// .eml files: the name sanitiser, name patterns, atomic no-clobber writes and their errors.
#include "store/eml_files.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/temp_dir.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(SafeFileNameTest, Table) {
  struct Case {
    std::string in;
    std::string out;
  } cases[] = {
      {"42-alice@example.com.eml", "42-alice@example.com.eml"},
      {"42-alice@example.com", "42-alice@example.com.eml"},
      {"report.EML", "report.eml"},
      {"../../etc/passwd", "_.._etc_passwd.eml"},
      {"..", "message.eml"},
      {".", "message.eml"},
      {"a/b", "a_b.eml"},
      {"a\\b", "a_b.eml"},
      {"con:", "con_.eml"},
      {"con", "_con.eml"},
      {"NUL.eml", "_NUL.eml"},
      {"Com1.txt", "_Com1.txt.eml"},
      {"com10", "com10.eml"},
      {"console", "console.eml"},
      {"a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h.eml"},
      {"bell\x07" "and\x1b[31mred", "bell_and_[31mred.eml"},
      {"del\x7f", "del_.eml"},
      {"  lots   of \t\r\n space  ", "lots of space.eml"},
      {".hidden", "hidden.eml"},
      {"-rf", "rf.eml"},
      {"--.-x", "x.eml"},
      {"trailing dots...", "trailing dots.eml"},
      {"", "message.eml"},
      {"   ", "message.eml"},
      {".eml", "message.eml"},
      {"///", "___.eml"},
      {"Jörg Müller — Angebot", "Jörg Müller — Angebot.eml"},
      {"bad\xff\xfeutf8", "bad__utf8.eml"},
      {"c\xc2\x85" "1", "c_1.eml"},                 // U+0085, a C1 control
      {"evil\xe2\x80\xaegpj.exe", "evil_gpj.exe.eml"},  // U+202E right-to-left override
      {"zero\xe2\x80\x8bwidth", "zero_width.eml"},
  };
  for (const auto& c : cases) EXPECT_EQ(safe_file_name(c.in), c.out) << c.in;
}

TEST(SafeFileNameTest, LongNamesAreCutWithoutSplittingUtf8) {
  std::string long_ascii(1000, 'a');
  std::string n = safe_file_name(long_ascii);
  EXPECT_EQ(n, std::string(176, 'a') + ".eml");
  EXPECT_EQ(n.size(), 180u);

  // "é" (2 octets) at octets 175-176 would be split by a cut at 176.
  std::string utf = std::string(175, 'b') + "\xC3\xA9" + "tail";
  n = safe_file_name(utf);
  EXPECT_EQ(n, std::string(175, 'b') + ".eml");

  // Every cut position over a run of 3- and 4-octet characters stays valid UTF-8.
  for (size_t pad = 0; pad < 4; ++pad) {
    std::string s(pad, 'p');
    for (int i = 0; i < 100; ++i) s += (i % 2) ? "\xE2\x82\xAC" : "\xF0\x9F\x98\x80";
    n = safe_file_name(s);
    EXPECT_LE(n.size(), 180u);
    EXPECT_TRUE(n.ends_with(".eml"));
    EXPECT_TRUE(valid_utf8(n)) << pad;
  }
  // A long name whose cut lands in white space or dots loses them too.
  n = safe_file_name(std::string(175, 'c') + " .....xyz");
  EXPECT_EQ(n, std::string(175, 'c') + ".eml");
}

TEST(EmlNamerTest, ExpandsVariablesAndMergeFields) {
  auto namer = EmlNamer::create("{{task_title}}-{{date}}-{{ recipient }}-{{id}}-{{City}}.eml",
                                {"first_name", "city"});
  ASSERT_TRUE(namer.ok()) << namer.error().describe();
  std::vector<std::string> values = {"Ann", "Köln/Süd"};
  EmlNameVars v;
  v.task_title = "Spring sale";
  v.subject = "Hi";
  v.recipient = "ann@example.com";
  v.time = 1714566896;  // 2024-05-01 12:34:56 UTC
  v.id = 7;
  v.values = &values;
  EXPECT_EQ(namer->name(v), "Spring sale-20240501-123456-ann@example.com-7-Köln_Süd.eml");

  auto def = EmlNamer::create(EmlNamer::kDefaultPattern, {});
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->name(v), "7-ann@example.com.eml");

  auto subj = EmlNamer::create("{{subject}} {{email}} {{first_name}}", {"first_name"});
  ASSERT_TRUE(subj.ok());
  v.values = nullptr;  // missing values render empty
  EXPECT_EQ(subj->name(v), "Hi ann@example.com.eml");
  v.subject = "../../x";
  EXPECT_EQ(def->name(v), "7-ann@example.com.eml");
  EXPECT_EQ(subj->name(v), "_.._x ann@example.com.eml");
}

TEST(EmlNamerTest, PatternErrors) {
  struct Case {
    std::string pattern;
    std::string fragment;
  } cases[] = {
      {"{{id}}-{{nope}}.eml", "unknown variable 'nope'; known: task_title, subject, recipient, "
                              "email, date, id, first_name"},
      {"{{id}}-{{recipient", "unterminated '{{'"},
      {"{{}}.eml", "'{{}}' is not a valid variable name"},
      {"{{a b}}.eml", "'{{a b}}' is not a valid variable name"},
  };
  for (const auto& c : cases) {
    auto n = EmlNamer::create(c.pattern, {"first_name"});
    ASSERT_FALSE(n.ok()) << c.pattern;
    EXPECT_EQ(n.error().domain, ErrDomain::kConfig);
    EXPECT_NE(n.error().message.find(c.fragment), std::string::npos) << n.error().message;
  }
}

TEST(EmlWriteTest, WritesAtomicallyAndLeavesNoTempFile) {
  test::TempDir dir;
  std::string d = dir.file("out");
  fs::create_directory(d);
  std::string body(100000, 'z');
  std::vector<std::string_view> pieces = {"Subject: hi\r\n", "", "\r\n", body, "\r\n"};
  std::string path;
  ASSERT_TRUE(write_eml_atomically(d, "1-a@x.com.eml", pieces, &path).ok());
  EXPECT_EQ(path, d + "/1-a@x.com.eml");
  EXPECT_EQ(slurp(path), "Subject: hi\r\n\r\n" + body + "\r\n");
  EXPECT_EQ(names_in(d), std::vector<std::string>{"1-a@x.com.eml"});

  // Many small pieces (more than one writev batch), with sync.
  std::vector<std::string> parts;
  std::vector<std::string_view> many;
  std::string want;
  for (int i = 0; i < 1000; ++i) parts.push_back(std::to_string(i) + ",");
  for (const auto& p : parts) {
    many.push_back(p);
    want += p;
  }
  ASSERT_TRUE(write_eml_atomically(d + "/", "many.eml", many, &path, true).ok());
  EXPECT_EQ(path, d + "/many.eml");
  EXPECT_EQ(slurp(path), want);
  EXPECT_EQ(names_in(d), (std::vector<std::string>{"1-a@x.com.eml", "many.eml"}));
}

TEST(EmlWriteTest, CollisionsGetSuffixesAndNothingIsOverwritten) {
  test::TempDir dir;
  std::string d = dir.file("c");
  fs::create_directory(d);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    std::string content = "message " + std::to_string(i);
    std::string path;
    ASSERT_TRUE(write_eml_atomically(d, "same.eml", {content}, &path).ok());
    got.push_back(fs::path(path).filename().string());
    EXPECT_EQ(slurp(path), content);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"same.eml", "same-2.eml", "same-3.eml", "same-4.eml"}));
  EXPECT_EQ(slurp(d + "/same.eml"), "message 0");
  std::string path;
  ASSERT_TRUE(write_eml_atomically(d, "noext", {"x"}, &path).ok());
  ASSERT_TRUE(write_eml_atomically(d, "noext", {"y"}, &path).ok());
  EXPECT_EQ(path, d + "/noext-2");
}

TEST(EmlWriteTest, ConcurrentWritersNeverClobber) {
  test::TempDir dir;
  std::string d = dir.file("p");
  fs::create_directory(d);
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::vector<std::string>> paths(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string content = std::to_string(t) + ":" + std::to_string(i);
        std::string path;
        if (write_eml_atomically(d, "x.eml", {content}, &path).ok()) paths[t].push_back(path);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(paths[t].size(), static_cast<size_t>(kEach));
    for (int i = 0; i < kEach; ++i) {
      EXPECT_EQ(slurp(paths[t][i]), std::to_string(t) + ":" + std::to_string(i));
      all.insert(paths[t][i]);
    }
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(names_in(d).size(), static_cast<size_t>(kThreads * kEach));  // no temp files
}

TEST(EmlWriteTest, ErrorsNameTheDirectory) {
  test::TempDir dir;
  std::string file = dir.write("plain", "not a directory");
  struct Case {
    std::string dir;
    std::string fragment;
  } cases[] = {
      {dir.file("missing"), "No such file or directory"},
      {file + "/sub", "Not a directory"},
      {"/proc/version/x", "Not a directory"},
  };
  for (const auto& c : cases) {
    std::string path = "unchanged";
    Status s = write_eml_atomically(c.dir, "a.eml", {"x"}, &path);
    ASSERT_FALSE(s.ok()) << c.dir;
    EXPECT_EQ(s.error().domain, ErrDomain::kSys);
    EXPECT_NE(s.error().message.find(c.dir), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find(c.fragment), std::string::npos) << s.error().message;
    EXPECT_EQ(path, "unchanged");
  }
  // /proc is a directory nobody can create files in, even root.
  Status s = write_eml_atomically("/proc", "a.eml", {"x"}, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("/proc"), std::string::npos);
}

TEST(EmlWriteTest, RejectsNamesThatAreNotPlain) {
  test::TempDir dir;
  for (const char* bad : {"", ".", "..", "a/b.eml", "../x.eml"}) {
    Status s = write_eml_atomically(dir.file(""), bad, {"x"}, nullptr);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().domain, ErrDomain::kInput);
  }
}

TEST(CheckWritableDirTest, Cases) {
  test::TempDir dir;
  std::string file = dir.write("plain", "x");
  EXPECT_TRUE(check_writable_dir(dir.file("")).ok());
  EXPECT_TRUE(names_in(dir.file("")) == std::vector<std::string>{"plain"});  // probe removed
  struct Case {
    std::string dir;
    std::string message;
  } cases[] = {
      {dir.file("missing"), "--pickup: " + dir.file("missing") + " does not exist"},
      {file, "--pickup: " + file + " is not a directory"},
      {file + "/sub",
       "--pickup: " + file + "/sub does not exist (part of the path is not a directory)"},
      {"/proc", "--pickup: /proc is not writable: "},
      {"", "--pickup: no directory given"},
  };
  for (const auto& c : cases) {
    Status s = check_writable_dir(c.dir, "--pickup");
    ASSERT_FALSE(s.ok()) << c.dir;
    EXPECT_EQ(s.error().domain, ErrDomain::kConfig);
    EXPECT_EQ(s.error().message.substr(0, c.message.size()), c.message);
  }
}

}  // namespace
}  // namespace sb
