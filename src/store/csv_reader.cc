// Streams CSV records out of libcsv with the physical line each record starts on.
#include "store/csv_reader.h"

namespace sb {
namespace {

// libcsv keeps its state machine in parser.pstate between calls; 0 is "no record begun"
// (libcsv.c's ROW_NOT_BEGUN). It is a public field of the struct in csv.h.
constexpr int kRowNotBegun = 0;

}  // namespace

CsvReader::CsvReader(CsvSink& sink) : sink_(sink) { init_ok_ = csv_init(&parser_, 0) == 0; }

CsvReader::~CsvReader() {
  if (init_ok_) csv_free(&parser_);
}

void CsvReader::on_field(void* s, size_t len, void* self) {
  auto* r = static_cast<CsvReader*>(self);
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

Status CsvReader::parse_error() {
  return make_error(ErrDomain::kInput,
                    std::string("CSV parser: ") + csv_strerror(csv_error(&parser_)));
}

Status CsvReader::feed(std::string_view data) {
  if (!init_ok_) return make_error(ErrDomain::kSys, "CSV parser: out of memory");
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
    if (nl != std::string_view::npos) ++line_;
    data.remove_prefix(len);
  }
  return {};
}

Status CsvReader::finish() {
  if (!init_ok_) return make_error(ErrDomain::kSys, "CSV parser: out of memory");
  if (!bom_checked_) {
    bom_checked_ = true;
    if (auto st = parse_lines(head_); !st) return st;
  }
  if (stopped_) return {};
  if (csv_fini(&parser_, on_field, on_row, this) != 0) return parse_error();
  return {};
}

}  // namespace sb
