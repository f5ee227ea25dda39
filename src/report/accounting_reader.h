// Reading an accounting log (store/accounting.h writes it) back for `smtpblast report`.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "base/result.h"
#include "report/report.h"

namespace sb {

// Reads the file line by line (never whole), so a log of millions of attempts needs little
// memory. The format comes from the extension, as when it was written (.csv or .jsonl).
class AccountingReader {
 public:
  // A kInput error naming the file when it cannot be opened or its extension is unknown.
  static Result<std::unique_ptr<AccountingReader>> open(const std::string& path);
  ~AccountingReader();
  AccountingReader(const AccountingReader&) = delete;
  AccountingReader& operator=(const AccountingReader&) = delete;

  // First pass: the earliest and latest attempt (ms since the epoch; 0, 0 when none).
  Status time_range(int64_t& first_ms, int64_t& last_ms);
  // Second pass: per-bucket outcomes (into d.buckets, on d.axis), reply codes, categories
  // and per-domain counts (the `top` busiest domains; at most kMaxDomains counted one by
  // one, the rest under "other").
  Status aggregate(ReportData& d, size_t top);

  static constexpr size_t kMaxDomains = 100000;

 private:
  AccountingReader(std::string path, std::FILE* f, bool jsonl);
  // Calls line(text) for each line, from the start; a read error is a kInput error.
  template <class F>
  Status each_line(F&& line);

  std::string path_;
  std::FILE* f_ = nullptr;
  bool jsonl_ = false;
};

}  // namespace sb
