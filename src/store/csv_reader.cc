// Streams CSV records out of libcsv with the physical line each record starts on.
#include "store/csv_reader.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/text.h"
#include "base/utf8.h"

namespace sb {
namespace {

// libcsv keeps its state machine in parser.pstate between calls; 0 is "no record begun"
// and 2 "inside a field" (libcsv.c's ROW_NOT_BEGUN, FIELD_BEGUN). Public fields of csv.h.
constexpr int kRowNotBegun = 0;
constexpr int kFieldBegun = 2;
constexpr size_t kConvertChunk = 1 << 16;

bool is_utf8_name(std::string_view enc) {
  std::string e = lower_ascii(enc);
  return e.empty() || e == "utf-8" || e == "utf8";
}

// Expected length of a UTF-8 sequence from its lead octet (0: not a lead octet).
size_t utf8_lead_len(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Octets at the end of s that begin a UTF-8 sequence the next chunk may complete.
size_t incomplete_tail(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation octet: look further back
    size_t want = utf8_lead_len(c);
    return want > back ? back : 0;
  }
  return 0;
}

std::string hex_octet(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", c);
  return buf;
}

// The space test libcsv uses to drop blanks around unquoted fields; a tab delimiter must not
// count as one.
int space_only(unsigned char c) { return c == ' ' ? 1 : 0; }

}  // namespace

bool parse_csv_delimiter(std::string_view arg, char* out) {
  if (arg == "tab" || arg == "\\t" || arg == "\t") {
    *out = '\t';
    return true;
  }
  if (arg.size() != 1) return false;
  *out = arg[0];
  return true;
}

Status check_csv_options(const CsvOptions& o) {
  auto c = static_cast<unsigned char>(o.delimiter);
  if (c == '"' || c == '\r' || c == '\n' || c == ' ' || c == 0 || c >= 0x80) {
    return make_error(ErrDomain::kConfig,
                      "--csv-delimiter: a delimiter must be one ASCII character other than a "
                      "quote, a space or a line break (e.g. ',', ';', tab)");
  }
  if (!is_utf8_name(o.encoding)) {
    iconv_t cd = iconv_open("UTF-8", o.encoding.c_str());
    if (cd == reinterpret_cast<iconv_t>(-1)) {
      return make_error(ErrDomain::kConfig,
                        "--csv-encoding: '" + o.encoding +
                            "' is not an encoding this system knows (e.g. utf-8, latin1, "
                            "cp1252, utf-16; `iconv -l` lists them)");
    }
    iconv_close(cd);
  }
  return {};
}

CsvReader::CsvReader(CsvSink& sink, const CsvOptions& options) : sink_(sink) {
  init_ok_ = csv_init(&parser_, 0) == 0;
  if (!init_ok_) return;
  csv_set_delim(&parser_, static_cast<unsigned char>(options.delimiter));
  if (options.delimiter == '\t') csv_set_space_func(&parser_, space_only);
  if (!is_utf8_name(options.encoding)) {
    encoding_ = options.encoding;
    cd_ = iconv_open("UTF-8", options.encoding.c_str());
    if (cd_ == reinterpret_cast<iconv_t>(-1)) init_ok_ = false;
  }
}

CsvReader::~CsvReader() {
  if (init_ok_) csv_free(&parser_);
  if (cd_ != reinterpret_cast<iconv_t>(-1)) iconv_close(cd_);
}

void CsvReader::on_field(void* s, size_t len, void* self) {
  auto* r = static_cast<CsvReader*>(self);
  r->quote_line_ = 0;  // whatever quote was open has closed
  if (r->stopped_) return;
  if (r->n_ == r->fields_.size()) r->fields_.emplace_back();
  std::string& f = r->fields_[r->n_++];
  // libcsv passes a null buffer for an empty field when it has not allocated one yet.
  if (len == 0 || s == nullptr) {
    f.clear();
  } else {
    f.assign(static_cast<const char*>(s), len);
  }
}

void CsvReader::on_row(int /*c*/, void* self) {
  auto* r = static_cast<CsvReader*>(self);
  size_t n = r->n_;
  r->n_ = 0;
  if (r->stopped_) return;
  bool blank = true;
  for (size_t i = 0; i < n && blank; ++i) blank = r->fields_[i].empty();
  if (blank) return;
  if (!r->sink_.on_record(r->fields_, n, r->row_line_)) r->stopped_ = true;
}

bool CsvReader::in_quoted_field() const {
  return parser_.pstate == kFieldBegun && parser_.quoted != 0;
}

Status CsvReader::parse_error() {
  return make_error(ErrDomain::kInput,
                    std::string("CSV parser: ") + csv_strerror(csv_error(&parser_)));
}

Status CsvReader::feed(std::string_view data) {
  if (!init_ok_) return make_error(ErrDomain::kSys, "CSV parser: out of memory");
  return decode(data, false);
}

// Non-UTF-8 input goes through iconv; either way feed_utf8() sees UTF-8 only.
Status CsvReader::decode(std::string_view data, bool final) {
  if (cd_ == reinterpret_cast<iconv_t>(-1)) {
    if (auto st = feed_utf8(data); !st) return st;
    if (final && !utf8_carry_.empty()) {
      return make_error(ErrDomain::kInput, "line " + std::to_string(text_line_) + ", column " +
                                               std::to_string(text_col_) +
                                               ": the file ends inside a UTF-8 "
                                               "character (octet " +
                                               hex_octet(utf8_carry_[0]) + ")");
    }
    return {};
  }
  std::string in;
  if (!raw_carry_.empty()) {
    in = raw_carry_ + std::string(data);
    raw_carry_.clear();
    data = in;
  }
  char* src = const_cast<char*>(data.data());
  size_t left = data.size();
  converted_.resize(kConvertChunk);
  while (left > 0 || final) {
    char* dst = converted_.data();
    size_t room = converted_.size();
    size_t rc = final && left == 0 ? iconv(cd_, nullptr, nullptr, &dst, &room)
                                   : iconv(cd_, &src, &left, &dst, &room);
    int err = rc == static_cast<size_t>(-1) ? errno : 0;
    size_t produced = converted_.size() - room;
    if (produced > 0) {
      if (auto st = feed_utf8(std::string_view(converted_.data(), produced)); !st) return st;
    }
    if (err == E2BIG) continue;
    if (err == EILSEQ || (err == EINVAL && final)) {
      return make_error(ErrDomain::kInput,
                        "line " + std::to_string(text_line_) + ", column " +
                            std::to_string(text_col_) + ": octet " +
                            hex_octet(static_cast<unsigned char>(*src)) +
                            (err == EINVAL ? " starts a character the file ends inside of"
                                           : " is not valid " + encoding_) +
                            " (--csv-encoding " + encoding_ + ")");
    }
    if (err == EINVAL) {  // a character split across chunks: keep its start for the next
      raw_carry_.assign(src, left);
      return {};
    }
    if (err != 0) {
      return make_error(ErrDomain::kSys,
                        std::string("converting from ") + encoding_ + ": " + std::strerror(err));
    }
    if (final && left == 0) break;
  }
  return {};
}

Status CsvReader::feed_utf8(std::string_view data) {
  if (!utf8_carry_.empty()) {
    size_t want = utf8_lead_len(static_cast<unsigned char>(utf8_carry_[0]));
    while (utf8_carry_.size() < want && !data.empty() &&
           (static_cast<unsigned char>(data.front()) & 0xC0) == 0x80) {
      utf8_carry_.push_back(data.front());
      data.remove_prefix(1);
    }
    if (utf8_carry_.size() < want && data.empty()) return {};  // the next chunk may complete it
    std::string seq = std::move(utf8_carry_);
    utf8_carry_.clear();
    if (auto st = check_utf8(seq); !st) return st;
    if (auto st = feed_checked(seq); !st) return st;
  }
  size_t tail = incomplete_tail(data);
  std::string_view whole = data.substr(0, data.size() - tail);
  if (auto st = check_utf8(whole); !st) return st;
  utf8_carry_.assign(data.substr(data.size() - tail));
  return feed_checked(whole);
}

namespace {

// Characters (not octets) in valid UTF-8 text: every octet that is not a continuation.
uint64_t count_chars(std::string_view s) {
  uint64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Moves a line/column position over valid UTF-8 text (columns count characters).
void advance(std::string_view s, uint64_t& line, uint64_t& col) {
  if (s.empty()) return;  // data() may be null, which memchr must not get
  const char* p = s.data();
  const char* end = p + s.size();
  const char* last_nl = nullptr;
  while (const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p))) {
    ++line;
    last_nl = static_cast<const char*>(nl);
    p = last_nl + 1;
  }
  if (last_nl) {
    col = 1 + count_chars(std::string_view(last_nl + 1, static_cast<size_t>(end - last_nl - 1)));
  } else {
    col += count_chars(s);
  }
}

}  // namespace

// The hot path of a big import: eight ASCII octets at a time, and the line and column are
// worked out with memchr after the chunk (or up to the bad octet), not per octet.
Status CsvReader::check_utf8(std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(p[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_len(data, i);
    if (len == 0) {
      advance(data.substr(0, i), text_line_, text_col_);
      std::string msg = "line " + std::to_string(text_line_) + ", column " +
                        std::to_string(text_col_) + ": octet " +
                        hex_octet(static_cast<unsigned char>(p[i])) + " is not ";
      if (cd_ == reinterpret_cast<iconv_t>(-1)) {
        msg +=
            "valid UTF-8; if the file was saved in another encoding, say which with "
            "--csv-encoding (latin1, cp1252, ...)";
      } else {
        msg += "valid " + encoding_;
      }
      return make_error(ErrDomain::kInput, std::move(msg));
    }
    i += len;
  }
  advance(data, text_line_, text_col_);
  return {};
}

// Valid UTF-8 from here on: the BOM check, then libcsv a line at a time.
Status CsvReader::feed_checked(std::string_view data) {
  if (!bom_checked_) {
    // The BOM may arrive split over several chunks: hold back a prefix of it until the
    // first three octets are known.
    static constexpr std::string_view kBom = "\xEF\xBB\xBF";
    while (head_.size() < kBom.size() && !data.empty()) {
      head_.push_back(data.front());
      data.remove_prefix(1);
    }
    if (head_.size() < kBom.size() && kBom.substr(0, head_.size()) == head_) return {};
    bom_checked_ = true;
    if (head_ != kBom) {
      if (auto st = parse_lines(head_); !st) return st;
    }
    head_.clear();
  }
  return parse_lines(data);
}

Status CsvReader::parse_lines(std::string_view data) {
  // Feeding one physical line at a time is what lets us know where a record starts: when
  // the parser is between records at the start of a line, the next record begins on it.
  while (!data.empty() && !stopped_) {
    if (parser_.pstate == kRowNotBegun) row_line_ = line_;
    size_t nl = data.find('\n');
    size_t len = nl == std::string_view::npos ? data.size() : nl + 1;
    if (csv_parse(&parser_, data.data(), len, on_field, on_row, this) != len) {
      return parse_error();
    }
    // A quote opened on this line (any field callback cleared the one before).
    if (quote_line_ == 0 && in_quoted_field()) quote_line_ = line_;
    if (nl != std::string_view::npos) ++line_;
    data.remove_prefix(len);
  }
  return {};
}

Status CsvReader::finish() {
  if (!init_ok_) return make_error(ErrDomain::kSys, "CSV parser: out of memory");
  if (auto st = decode({}, true); !st) return st;
  if (!bom_checked_) {
    bom_checked_ = true;
    if (auto st = parse_lines(head_); !st) return st;
  }
  if (stopped_) return {};
  if (in_quoted_field()) {
    // libcsv would take everything up to the end as one field: a missing quote there
    // swallows every later row into one value, so it is an error, not a guess.
    return make_error(ErrDomain::kInput,
                      "line " + std::to_string(quote_line_ ? quote_line_ : row_line_) +
                          ": a quoted field starts on this line and is never closed (a '\"' is "
                          "missing)");
  }
  if (csv_fini(&parser_, on_field, on_row, this) != 0) return parse_error();
  return {};
}

}  // namespace sb
