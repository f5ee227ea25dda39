// Streams CSV records out of libcsv with the physical line each record starts on.
#pragma once

#include <csv.h>
#include <iconv.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb {

class CsvSink {
 public:
  virtual ~CsvSink() = default;
  // One record: fields[0..n) (fields beyond n are stale buffers), starting on 1-based
  // physical line `line`. Return false to stop the reader (the sink keeps its own error).
  virtual bool on_record(const std::vector<std::string>& fields, size_t n, uint64_t line) = 0;
};

// How the CSV is written: its text encoding and field delimiter.
struct CsvOptions {
  // "" (or utf-8/utf8, any case): UTF-8, a BOM optional. Anything else is a name iconv knows
  // (latin1, cp1252, utf-16, ...): the input is converted to UTF-8 before it is parsed.
  std::string encoding;
  char delimiter = ',';
};

// Checks the options up front (an encoding iconv does not know, a delimiter that cannot
// work: a quote, CR, LF, space, or a non-ASCII octet). kConfig error naming the flag.
Status check_csv_options(const CsvOptions& o);
// Parses a --csv-delimiter argument: one ASCII character, or "tab" / "\t".
bool parse_csv_delimiter(std::string_view arg, char* out);

// RFC 4180 reading through libcsv in its forgiving (non-strict) mode: quoted fields may hold
// commas, doubled quotes and line breaks; a stray quote inside an unquoted field is kept as
// a character; a quoted field still open at the end of the input is an error naming the line
// its quote opened on. The text must be valid in the declared encoding (UTF-8 by default):
// the first octet that is not is an error naming its line and column (in characters). Spaces
// and tabs around fields are dropped (libcsv's default; only spaces with a tab delimiter)
// unless they are inside quotes. A UTF-8 BOM at the
// start is skipped. Blank records — empty lines, or lines whose fields are all empty such as
// ",,," from spreadsheet exports — are skipped. Line endings: LF or CRLF; line numbers count
// LFs, so a file using bare CR line breaks reports every record on line 1.
class CsvReader {
 public:
  explicit CsvReader(CsvSink& sink, const CsvOptions& options = {});
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Feeds the next chunk of the input; chunks may split records anywhere.
  Status feed(std::string_view data);
  // Flushes a last record that has no line break after it.
  Status finish();
  bool stopped() const { return stopped_; }

 private:
  static void on_field(void* s, size_t len, void* self);
  static void on_row(int c, void* self);
  Status decode(std::string_view data, bool final);
  Status feed_utf8(std::string_view data);
  Status check_utf8(std::string_view data);
  Status feed_checked(std::string_view data);
  Status parse_lines(std::string_view data);
  Status parse_error();
  bool in_quoted_field() const;

  CsvSink& sink_;
  csv_parser parser_{};
  bool init_ok_ = false;
  std::string encoding_;                        // for messages; "" = UTF-8
  iconv_t cd_ = reinterpret_cast<iconv_t>(-1);  // open when the input is not UTF-8
  std::string raw_carry_;                       // input octets of a character split across chunks
  std::string utf8_carry_;                      // the same for UTF-8 input
  std::string converted_;                       // iconv's output, reused
  uint64_t text_line_ = 1;                      // where the decoder is, for encoding errors
  uint64_t text_col_ = 1;                       // in characters
  uint64_t quote_line_ = 0;  // line the open quoted field started on (0: none known)
  bool bom_checked_ = false;
  std::string head_;  // the first octets while deciding whether they are a BOM
  bool stopped_ = false;
  uint64_t line_ = 1;      // physical line of the next byte fed
  uint64_t row_line_ = 1;  // physical line the record being parsed started on
  std::vector<std::string> fields_;
  size_t n_ = 0;
};

}  // namespace sb
