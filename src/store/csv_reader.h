// Streams CSV records out of libcsv with the physical line each record starts on.
#pragma once

#include <csv.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loop/result.h"

namespace sb {

class CsvSink {
 public:
  virtual ~CsvSink() = default;
  // One record: fields[0..n) (fields beyond n are stale buffers), starting on 1-based
  // physical line `line`. Return false to stop the reader (the sink keeps its own error).
  virtual bool on_record(const std::vector<std::string>& fields, size_t n, uint64_t line) = 0;
};

// RFC 4180 reading through libcsv in its forgiving (non-strict) mode: quoted fields may hold
// commas, doubled quotes and line breaks; a stray quote inside an unquoted field is kept as
// a character; an unterminated quote runs to the end of the input. Spaces and tabs around
// fields are dropped (libcsv's default) unless they are inside quotes. A UTF-8 BOM at the
// start is skipped. Blank records — empty lines, or lines whose fields are all empty such as
// ",,," from spreadsheet exports — are skipped. Line endings: LF or CRLF; line numbers count
// LFs, so a file using bare CR line breaks reports every record on line 1.
class CsvReader {
 public:
  explicit CsvReader(CsvSink& sink);
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
  Status parse_lines(std::string_view data);
  Status parse_error();

  CsvSink& sink_;
  csv_parser parser_{};
  bool init_ok_ = false;
  bool bom_checked_ = false;
  std::string head_;  // the first octets while deciding whether they are a BOM
  bool stopped_ = false;
  uint64_t line_ = 1;      // physical line of the next byte fed
  uint64_t row_line_ = 1;  // physical line the record being parsed started on
  std::vector<std::string> fields_;
  size_t n_ = 0;
};

}  // namespace sb
