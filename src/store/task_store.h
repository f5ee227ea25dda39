// The task store: a SQLite file holding one mailing's recipients, their statuses and counters.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loop/result.h"

namespace sb {

// Numeric values are stored in the database; never renumber.
enum class RcptStatus : uint8_t {
  kUnsent = 0,
  kSent = 1,
  kDeferred = 2,
  kFailed = 3,
  kSuppressed = 4,
  kInFlight = 5,  // claimed by a run that has not recorded an outcome yet (issue 4)
};
const char* status_name(RcptStatus s);

struct RecipientRow {
  int64_t id = 0;
  std::string email;
  std::vector<std::string> values;  // aligned with TaskStore::field_names()
  uint32_t attempts = 0;            // attempts made in earlier runs
};

struct Outcome {
  int64_t id = 0;
  RcptStatus status = RcptStatus::kUnsent;
  int code = 0;            // SMTP reply code, 0 when there was none (local failure)
  std::string reply;       // sanitised reply text or local reason, capped at 512 octets
  uint32_t attempts = 0;   // total attempts including this one
  int64_t time = 0;        // unix seconds
};

struct ImportReport {
  uint64_t imported = 0;
  uint64_t duplicates = 0;  // same address (case-insensitive domain) seen again: skipped
  uint64_t invalid = 0;     // imported as failed with the reason (bad address, bad row)
  std::vector<std::string> problems;  // first few problems, "line N: reason"
};

struct StatusCounts {
  uint64_t total = 0;
  std::map<RcptStatus, uint64_t> by_status;
  std::map<int, uint64_t> by_code;  // last reply code -> count (0 = no reply)
  uint64_t get(RcptStatus s) const {
    auto it = by_status.find(s);
    return it == by_status.end() ? 0 : it->second;
  }
};

// Not thread-safe: one thread owns a TaskStore (the CLI's store thread).
class TaskStore {
 public:
  // Opens (creating when allowed) the task file; WAL mode, synchronous=NORMAL.
  // A file that is not a task store, or is corrupt, is a kStore error naming the file.
  static Result<std::unique_ptr<TaskStore>> open(const std::string& path, bool create);
  ~TaskStore();
  TaskStore(const TaskStore&) = delete;
  TaskStore& operator=(const TaskStore&) = delete;

  bool imported() const;  // a recipient list was already imported into this task
  // Imports an RFC 4180 CSV with a header row (UTF-8, optional BOM, quoted fields with
  // newlines, blank lines skipped). Column "email" (case-insensitive) is required: its absence
  // is a kInput error before anything is written. Other columns become merge fields.
  // All rows are written in one transaction; a row with a bad address is stored as failed.
  Result<ImportReport> import_csv(const std::string& path);
  const std::vector<std::string>& field_names() const;

  // Task metadata (template hash, title, settings), a small key/value table.
  Result<std::optional<std::string>> get_meta(std::string_view key);
  Status set_meta(std::string_view key, std::string_view value);

  // Up to `limit` recipients with id > after_id whose status is unsent or deferred
  // (or in flight, left by a killed run), in id order. Appends to out.
  Result<size_t> claim(int64_t after_id, size_t limit, std::vector<RecipientRow>& out);

  // Records outcomes in one transaction (the journal writer batches them).
  Status record(const std::vector<Outcome>& outcomes);

  Result<StatusCounts> counts();

 private:
  struct Impl;
  explicit TaskStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
