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
std::vector<Rec> parse(std::string_view in, size_t chunk = 0) {
  Collect c;
  CsvReader r(c);
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

TEST(CsvReaderTest, ShortInputsThatStartLikeABom) {
  EXPECT_THAT(parse("\xEF"), ElementsAre(Rec{{"\xEF"}, 1}));
  EXPECT_THAT(parse("\xEF\xBB", 1), ElementsAre(Rec{{"\xEF\xBB"}, 1}));
  EXPECT_THAT(parse("\xEF\xBB\xBF", 1), ElementsAre());
  EXPECT_THAT(parse("\xEFx\n", 1), ElementsAre(Rec{{"\xEFx"}, 1}));
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
