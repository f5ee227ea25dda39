// SqliteTaskStore: the task store in one SQLite file, the embedded default behind TaskStore.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>

#include "store/task_store.h"

namespace sb {

// Not thread-safe: one thread owns a store (the CLI's store thread) and makes every call on
// it; the SQLite connection is opened without its own mutex. Other processes may open the
// same file (WAL mode, busy timeout), e.g. `status` while `send` runs.
class SqliteTaskStore final : public TaskStore {
 public:
  static Result<std::unique_ptr<TaskStore>> open_impl(const std::string& path, bool create,
                                                      bool read_only);
  ~SqliteTaskStore() override;

  bool imported() const override;
  Result<ImportReport> import_csv(const std::string& path,
                                  const ImportOptions& options = {}) override;
  Result<ImportReport> import_csv_buffer(std::string_view data, std::string_view name,
                                         const ImportOptions& options = {}) override;
  const std::vector<std::string>& field_names() const override;
  Result<std::optional<std::string>> get_meta(std::string_view key) override;
  Status set_meta(std::string_view key, std::string_view value) override;
  Result<size_t> claim(int64_t after_id, size_t limit, std::vector<RecipientRow>& out,
                       bool mark_in_flight = false) override;
  Status record(const std::vector<Outcome>& outcomes) override;
  Result<StatusCounts> counts(bool with_codes = true) override;
  Status reset(bool errors_only) override;
  using TaskStore::list;
  Result<std::vector<std::pair<RecipientRow, Outcome>>> list(const std::vector<RcptStatus>& s,
                                                             size_t limit) override;
  Result<bool> return_seen(std::string_view key) override;
  Result<ReturnApplied> record_return(const ReturnRecord& r) override;
  Result<std::vector<ReturnApplied>> record_returns(
      const std::vector<ReturnRecord>& batch) override;
  Result<std::optional<std::string>> email_of(int64_t id) override;
  Result<std::optional<ReturnInfo>> return_info(int64_t id) override;
  Result<std::vector<std::string>> returned_addresses() override;
  Result<std::pair<int64_t, int64_t>> outcome_span(
      const std::vector<RcptStatus>& statuses) override;
  Status outcome_histogram(
      const std::vector<RcptStatus>& statuses, int64_t start_s, int64_t width_s,
      const std::function<void(int64_t bucket, RcptStatus s, uint64_t n)>& add) override;
  Result<DomainSummary> domain_summary(size_t top) override;
  Result<std::vector<std::pair<std::string, uint64_t>>> return_categories() override;
  Result<std::map<int, uint64_t>> codes_of(const std::vector<RcptStatus>& statuses) override;
  Result<SmsReceiptApplied> apply_receipt(const SmsReceiptUpdate& r) override;
  Result<TaskSuppressionAdded> add_suppression(std::string_view key, std::string_view reason,
                                               int64_t time = 0) override;
  Result<std::vector<std::string>> suppressions() override;
  Result<SmsPartial> partial_sms(int64_t rcpt_id) override;

  // The connection, for the task file's own tables kept elsewhere (store/sms_ids.h).
  sqlite3* handle() const;

  struct Impl;

 private:
  Result<StatusCounts> counts_in_snapshot(bool with_codes);
  explicit SqliteTaskStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
