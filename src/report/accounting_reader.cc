// The accounting log, read back: two streaming passes (time span, then counts).
#include "report/accounting_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/text.h"
#include "store/address.h"

namespace sb {

namespace {

Error input_error(const std::string& path, const std::string& what) {
  return make_error(ErrDomain::kInput, "accounting file " + path + ": " + what);
}

int digits(std::string_view s, size_t at, size_t n) {
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

constexpr size_t kMaxCategories = 200;
constexpr std::string_view kNoCategory = "(none)";
constexpr std::string_view kOtherCategory = "(other categories)";

// One attempt, as much as the report needs of it.
struct Row {
  int64_t time_ms = 0;
  std::string recipient, status, category;
  int code = 0;
};

// The CSV columns, found by the header's names (so a reordered file still reads).
struct Columns {
  int time = 0, recipient = 1, status = 2, code = 3, category = 12;
};

bool parse_csv_row(std::string_view line, const Columns& c, Row& r) {
  std::vector<std::string> f = split_csv_line(line);
  auto get = [&](int i) -> const std::string& {
    static const std::string kEmpty;
    return i >= 0 && static_cast<size_t>(i) < f.size() ? f[static_cast<size_t>(i)] : kEmpty;
  };
  if (!parse_iso_utc_ms(get(c.time), r.time_ms)) return false;
  r.recipient = get(c.recipient);
  r.status = get(c.status);
  r.code = std::atoi(get(c.code).c_str());
  r.category = get(c.category);
  return true;
}

bool parse_jsonl_row(std::string_view line, Row& r) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object()) return false;
  auto str = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!parse_iso_utc_ms(str("time"), r.time_ms)) return false;
  r.recipient = str("recipient");
  r.status = str("status");
  r.category = str("category");
  auto code = j.find("code");
  r.code = code != j.end() && code->is_number_integer() ? code->get<int>() : 0;
  return true;
}

size_t outcome_of(std::string_view status) {
  for (size_t i = 0; i < kOutcomeCount; ++i) {
    if (status == outcome_name(i)) return i;
  }
  return kOutcomeCount;
}

}  // namespace

bool parse_iso_utc_ms(std::string_view s, int64_t& ms) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':' || s.back() != 'Z') {
    return false;
  }
  int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  int h = digits(s, 11, 2), mi = digits(s, 14, 2), sec = digits(s, 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 60) {
    return false;
  }
  int frac = 0;
  size_t rest = s.size() - 20;  // between the seconds and the 'Z'
  if (rest > 0) {
    if (s[19] != '.' || rest < 2) return false;
    int scale = 1000;
    for (size_t i = 20; i < s.size() - 1; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      if (scale > 1) {
        scale /= 10;
        frac += (s[i] - '0') * scale;
      }
    }
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  ms = static_cast<int64_t>(timegm(&tm)) * 1000 + frac;
  return true;
}

std::vector<std::string> split_csv_line(std::string_view line) {
  std::vector<std::string> out;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size()) {
      out.push_back(std::move(field));
      break;
    }
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(std::move(field));
      field.clear();
    } else {
      field.push_back(c);
    }
  }
  return out;
}

Result<std::unique_ptr<AccountingReader>> AccountingReader::open(const std::string& path) {
  bool jsonl = iends_with(path, ".jsonl");
  if (!jsonl && !iends_with(path, ".csv")) {
    return input_error(path, "the format comes from the extension: .csv or .jsonl");
  }
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) {
    int e = errno;
    return input_error(path, e == ENOENT ? "no such file" : std::strerror(e));
  }
  return std::unique_ptr<AccountingReader>(new AccountingReader(path, f, jsonl));
}

AccountingReader::AccountingReader(std::string path, std::FILE* f, bool jsonl)
    : path_(std::move(path)), f_(f), jsonl_(jsonl) {}

AccountingReader::~AccountingReader() {
  if (f_ != nullptr) std::fclose(f_);
}

template <class F>
Status AccountingReader::each_line(F&& line) {
  std::rewind(f_);
  std::clearerr(f_);
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&buf, &cap, f_)) >= 0) {
    std::string_view l(buf, static_cast<size_t>(n));
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.remove_suffix(1);
    if (!l.empty()) line(l);
  }
  int e = errno;
  bool failed = std::ferror(f_) != 0;
  std::free(buf);
  if (failed) return input_error(path_, std::string("cannot read it: ") + std::strerror(e));
  return {};
}

Status AccountingReader::time_range(int64_t& first_ms, int64_t& last_ms) {
  first_ms = last_ms = 0;
  static constexpr std::string_view kKey = "\"time\":\"";
  return each_line([&](std::string_view l) {
    std::string_view t;
    if (jsonl_) {
      size_t at = l.find(kKey);
      if (at == std::string_view::npos) return;
      size_t end = l.find('"', at + kKey.size());
      if (end == std::string_view::npos) return;
      t = l.substr(at + kKey.size(), end - at - kKey.size());
    } else {
      t = l.substr(0, std::min(l.find(','), l.size()));
    }
    int64_t ms;
    if (!parse_iso_utc_ms(t, ms)) return;
    first_ms = first_ms == 0 ? ms : std::min(first_ms, ms);
    last_ms = std::max(last_ms, ms);
  });
}

Status AccountingReader::aggregate(ReportData& d, size_t top) {
  Columns cols;
  bool first = true;
  std::unordered_map<std::string, DestinationRow> domains;
  std::unordered_map<int, uint64_t> codes;
  std::unordered_map<std::string, uint64_t> categories;
  Row r;
  auto st = each_line([&](std::string_view l) {
    if (!jsonl_ && first && l.rfind("time,", 0) == 0) {
      std::vector<std::string> h = split_csv_line(l);
      auto at = [&](const char* name, int dflt) {
        auto it = std::find(h.begin(), h.end(), name);
        return it == h.end() ? dflt : static_cast<int>(it - h.begin());
      };
      cols = {at("time", -1), at("recipient", -1), at("status", -1), at("code", -1),
              at("category", -1)};
      first = false;
      return;
    }
    first = false;
    bool ok = jsonl_ ? parse_jsonl_row(l, r) : parse_csv_row(l, cols, r);
    if (!ok) {
      ++d.skipped_lines;
      return;
    }
    ++d.attempts;
    const size_t o = outcome_of(r.status);
    const int64_t t = r.time_ms / 1000;
    if (o < kOutcomeCount && d.axis.count > 0 && t >= d.axis.start_s) {
      size_t i = static_cast<size_t>((t - d.axis.start_s) / d.axis.bucket_s);
      if (i < d.buckets.size()) d.buckets[i][o] += 1;
    }
    ++codes[r.code];
    if (o != kOutSent) {
      // The classifier has a few dozen categories; a log edited by hand could have any
      // number, so past kMaxCategories the rest are counted together.
      if (r.category.empty()) r.category = kNoCategory;
      const std::string& cat = r.category;
      auto c = categories.find(cat);
      if (c != categories.end()) {
        ++c->second;
      } else if (categories.size() < kMaxCategories) {
        categories.emplace(cat, 1);
      } else {
        ++categories[std::string(kOtherCategory)];
      }
    }
    if (o != kOutSent && o != kOutDeferred && o != kOutFailed) return;
    std::string dom = destination_of(r.recipient);
    auto it = domains.find(dom);
    DestinationRow* row = nullptr;
    if (it != domains.end()) {
      row = &it->second;
    } else if (domains.size() < kMaxDomains) {
      row = &domains.emplace(dom, DestinationRow{dom}).first->second;
    } else {
      row = &d.other;
      d.destinations_capped = true;
    }
    (o == kOutSent ? row->sent : o == kOutDeferred ? row->deferred : row->failed) += 1;
  });
  if (!st) return st;
  for (auto& [code, n] : codes) d.codes.emplace_back(code == 0 ? "none" : std::to_string(code), n);
  for (auto& [cat, n] : categories) d.classes.emplace_back(cat, n);
  d.classes_source = "unsuccessful attempts in the accounting log, by the reply's category";
  d.destination_count = domains.size();
  std::vector<DestinationRow> rows;
  rows.reserve(domains.size());
  for (auto& [name, row] : domains) rows.push_back(std::move(row));
  domains.clear();
  auto total = [](const DestinationRow& x) { return x.sent + x.deferred + x.failed; };
  auto busier = [&](const DestinationRow& a, const DestinationRow& b) {
    return total(a) != total(b) ? total(a) > total(b) : a.name < b.name;
  };
  size_t n = std::min(top, rows.size());
  std::partial_sort(rows.begin(), rows.begin() + static_cast<long>(n), rows.end(), busier);
  for (size_t i = n; i < rows.size(); ++i) {
    d.other.sent += rows[i].sent;
    d.other.deferred += rows[i].deferred;
    d.other.failed += rows[i].failed;
  }
  rows.resize(n);
  d.destinations = std::move(rows);
  d.other.name = "other";
  return {};
}

}  // namespace sb
