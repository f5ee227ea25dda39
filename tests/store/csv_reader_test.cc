// Tests of the libcsv wrapper: records, blank-line skipping and record start lines, any chunking.
#include "store/csv_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb {
namespace {

using ::testing::ElementsAre;

struct Rec {
  std::vector<std::string> fields;
  uint64_t line;
  bool operator==(const Rec&) const = default;
};

void PrintTo(const Rec& r, std::ostream* os) {
  *os << "line " << r.line << ": " << ::testing::PrintToString(r.fields);
}

class Collect : public CsvSink {
 public:
  bool on_record(const std::vector<std::string>& f, size_t n, uint64_t line) override {
    recs.push_back({std::vector<std::string>(f.begin(), f.begin() + static_cast<long>(n)), line});
    return stop_after == 0 || recs.size() < stop_after;
  }
  std::vector<Rec> recs;
  size_t stop_after = 0;
};

// Parses `in` fed in pieces of `chunk` octets (0 = all at once).
std::vector<Rec> parse(std::string_view in, size_t chunk = 0, const CsvOptions& o = {}) {
  Collect c;
  CsvReader r(c, o);
  if (chunk == 0) chunk = in.size() + 1;
  for (size_t i = 0; i < in.size(); i += chunk) {
    EXPECT_TRUE(r.feed(in.substr(i, chunk)).ok());
  }
  EXPECT_TRUE(r.finish().ok());
  return c.recs;
}

TEST(CsvReaderTest, RecordsAndStartLines) {
  const std::string in =
      "\xEF\xBB\xBF"
      "email,note\r\n"
      "\r\n"
      "a@x.com,\"multi\r\nline\"\r\n"
      "  b@x.com  ,  spaced  \r\n"
      ",,\r\n"
      "c@x.com,\"say \"\"hi\"\"\"\r\n"
      "d@x.com,unterminated \"quote";
  std::vector<Rec> want = {
      {{"email", "note"}, 1},
      {{"a@x.com", "multi\r\nline"}, 3},
      {{"b@x.com", "spaced"}, 5},
      {{"c@x.com", "say \"hi\""}, 7},
      {{"d@x.com", "unterminated \"quote"}, 8},
  };
  EXPECT_EQ(parse(in), want);
  for (size_t chunk : {1, 2, 3, 5, 7}) EXPECT_EQ(parse(in, chunk), want) << "chunk " << chunk;
}

TEST(CsvReaderTest, BomOnlyAtTheStart) {
  auto recs = parse(
      "a\n\xEF\xBB\xBF"
      "b\n");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].fields[0],
            "\xEF\xBB\xBF"
            "b");
}

// The error a whole input gives when fed in pieces of `chunk` octets ("" when none).
std::string parse_error(std::string_view in, size_t chunk = 0, const CsvOptions& o = {}) {
  Collect c;
  CsvReader r(c, o);
  if (chunk == 0) chunk = in.size() + 1;
  for (size_t i = 0; i < in.size(); i += chunk) {
    if (auto st = r.feed(in.substr(i, chunk)); !st.ok()) return st.error().message;
  }
  auto st = r.finish();
  return st.ok() ? "" : st.error().message;
}

TEST(CsvReaderTest, ShortInputsThatStartLikeABom) {
  // A BOM split over chunks is still a BOM; its prefixes alone are not UTF-8 (issue 18/12:
  // no longer passed through to be sent as charset=utf-8).
  EXPECT_THAT(parse("\xEF\xBB\xBF", 1), ElementsAre());
  EXPECT_THAT(parse("\xEF\xBB\xBF" "a\n", 1), ElementsAre(Rec{{"a"}, 1}));
  EXPECT_EQ(parse_error("\xEF"), "line 1, column 1: the file ends inside a UTF-8 character "
                                  "(octet 0xEF)");
  EXPECT_EQ(parse_error("\xEF\xBB", 1), "line 1, column 1: the file ends inside a UTF-8 "
                                         "character (octet 0xEF)");
  EXPECT_THAT(parse_error("\xEFx\n", 1), ::testing::StartsWith("line 1, column 1: octet 0xEF "
                                                                "is not valid UTF-8"));
}

// Issue 18: an unterminated quoted field at the end was accepted silently, swallowing every
// later row into one value.
TEST(CsvReaderTest, UnterminatedQuotedFieldIsAnErrorNamingItsLine) {
  const std::string in = "email,note\na@x.com,ok\nb@x.com,\"open\nc@x.com,lost\n";
  for (size_t chunk : {0, 1, 2, 3, 7}) {
    EXPECT_EQ(parse_error(in, chunk),
              "line 3: a quoted field starts on this line and is never closed (a '\"' is "
              "missing)")
        << "chunk " << chunk;
  }
  // A quote that closes on a later line, then another that never does.
  EXPECT_THAT(parse_error("email,note\na@x.com,\"two\nlines\"\nb@x.com,x\nc@x.com,\"x\n"),
              ::testing::StartsWith("line 5: a quoted field"));
  EXPECT_THAT(parse_error("a,\"x\",\"y"), ::testing::StartsWith("line 1: a quoted field"));
  // Closed at the very end without a newline: fine.
  EXPECT_THAT(parse("a,\"x\ny\""), ElementsAre(Rec{{"a", "x\ny"}, 1}));
}

// Issue 12/18: bytes not valid in the declared encoding are an error naming line and column.
TEST(CsvReaderTest, InvalidUtf8NamesLineAndColumn) {
  const std::string in = "email,name\na@x.com,J\xC3\xB6rg\nb@x.com,Jos\xE9\n";
  for (size_t chunk : {0, 1, 2, 5}) {
    EXPECT_EQ(parse_error(in, chunk),
              "line 3, column 12: octet 0xE9 is not valid UTF-8; if the file was saved in "
              "another encoding, say which with --csv-encoding (latin1, cp1252, ...)")
        << "chunk " << chunk;
  }
  // Valid multi-octet characters split across chunks, overlong forms and surrogates.
  EXPECT_THAT(parse("a,\xE2\x82\xAC\xF0\x9F\x98\x80\n", 1),
              ElementsAre(Rec{{"a", "\xE2\x82\xAC\xF0\x9F\x98\x80"}, 1}));
  EXPECT_THAT(parse_error("a\xC0\xAF"), ::testing::StartsWith("line 1, column 2: octet 0xC0"));
  EXPECT_THAT(parse_error("\n\n\xED\xA0\x80"), ::testing::StartsWith("line 3, column 1:"));
}

TEST(CsvReaderTest, Latin1AndCp1252AreConverted) {
  CsvOptions latin1;
  latin1.encoding = "latin1";
  const std::string in = "email,name\na@x.com,Jos\xE9 M\xFCller\n";
  for (size_t chunk : {0, 1, 3}) {
    EXPECT_THAT(parse(in, chunk, latin1),
                ElementsAre(Rec{{"email", "name"}, 1},
                            Rec{{"a@x.com", "Jos\xC3\xA9 M\xC3\xBCller"}, 2}));
  }
  CsvOptions cp1252;
  cp1252.encoding = "CP1252";
  EXPECT_THAT(parse("a,\x80 \x93q\x94\n", 1, cp1252),
              ElementsAre(Rec{{"a", "\xE2\x82\xAC \xE2\x80\x9Cq\xE2\x80\x9D"}, 1}));
  // 0x81 has no character in cp1252.
  EXPECT_EQ(parse_error("email\nab\x81\n", 0, cp1252),
            "line 2, column 3: octet 0x81 is not valid CP1252 (--csv-encoding CP1252)");
}

TEST(CsvReaderTest, Utf16WithBomIsConverted) {
  CsvOptions o;
  o.encoding = "UTF-16";
  std::string in;
  for (char c : std::string("e,\xE9\n")) {  // little-endian, BOM first
    in.push_back(c);
    in.push_back('\0');
  }
  in = std::string("\xFF\xFE", 2) + in;
  EXPECT_THAT(parse(in, 1, o), ElementsAre(Rec{{"e", "\xC3\xA9"}, 1}));
  // A file cut inside a UTF-16 unit.
  EXPECT_THAT(parse_error(in + "x", 0, o), ::testing::HasSubstr("file ends inside"));
}

TEST(CsvReaderTest, OtherDelimiters) {
  CsvOptions semi;
  semi.delimiter = ';';
  EXPECT_THAT(parse("email;name\na@x.com;\"Smith, Jr.\"\n", 0, semi),
              ElementsAre(Rec{{"email", "name"}, 1}, Rec{{"a@x.com", "Smith, Jr."}, 2}));
  CsvOptions tab;
  tab.delimiter = '\t';
  EXPECT_THAT(parse("email\tname\na@x.com\t\tx \n", 0, tab),
              ElementsAre(Rec{{"email", "name"}, 1}, Rec{{"a@x.com", "", "x"}, 2}));
}

TEST(CsvReaderTest, OptionsAreChecked) {
  CsvOptions o;
  EXPECT_TRUE(check_csv_options(o).ok());
  o.encoding = "utf-8";
  EXPECT_TRUE(check_csv_options(o).ok());
  o.encoding = "no-such-encoding";
  auto st = check_csv_options(o);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message, ::testing::StartsWith("--csv-encoding: 'no-such-encoding'"));
  o.encoding.clear();
  for (char d : {'"', '\n', '\r', ' '}) {
    o.delimiter = d;
    EXPECT_FALSE(check_csv_options(o).ok()) << int(d);
  }
  char d = 0;
  EXPECT_TRUE(parse_csv_delimiter("tab", &d));
  EXPECT_EQ(d, '\t');
  EXPECT_TRUE(parse_csv_delimiter(";", &d));
  EXPECT_EQ(d, ';');
  EXPECT_FALSE(parse_csv_delimiter(";;", &d));
}

TEST(CsvReaderTest, SinkCanStop) {
  Collect c;
  c.stop_after = 1;
  CsvReader r(c);
  ASSERT_TRUE(r.feed("a\nb\nc\n").ok());
  ASSERT_TRUE(r.finish().ok());
  EXPECT_TRUE(r.stopped());
  ASSERT_EQ(c.recs.size(), 1u);
}

TEST(CsvReaderTest, EmptyInput) {
  EXPECT_TRUE(parse("").empty());
  EXPECT_TRUE(parse("\n\r\n  \n").empty());
  EXPECT_THAT(parse("x"), ElementsAre(Rec{{"x"}, 1}));
}

}  // namespace
}  // namespace sb
