// Journal: commits a batch of outcomes to the task store, with accounting rows and backup copies.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/accounting.h"
#include "store/eml_files.h"
#include "store/task_store.h"

namespace sb {

// One outcome on its way from a worker to the store, with what the accounting log and the
// backup copy need (filled only when those are on).
struct JournalEntry {
  Outcome out;
  int64_t time_ms = 0;  // wall clock when the attempt ended
  std::string email;
  std::string peer_ip;  // the connection's remote address ("" without one)
  uint16_t peer_port = 0;
  std::string tls_version;
  uint64_t conn_id = 0;
  uint32_t elapsed_ms = 0;
  std::string eml;                  // --backup-dir, sent only: the message as written to disk
  std::vector<std::string> values;  // --backup-dir: merge values, for the file name
};

// A claimed recipient never started: back to the status it had before the claim (so nothing
// stays in flight in the store).
void add_released(std::vector<JournalEntry>& out, const RecipientRow& row);

struct JournalOptions {
  std::unique_ptr<AccountingLog> accounting;  // --accounting; null: none
  // The accounting log's category column for a refusal (the returns classifier); may be empty.
  std::function<std::string(int code, const std::string& reply)> categorize;
  std::string backup_dir;         // --backup-dir; "" none
  std::optional<EmlNamer> namer;  // --backup-name
  std::string title;              // {{task_title}}
  // {{subject}} in the name: the Subject of the message as rendered; empty: not used.
  std::function<std::string(std::string_view eml)> subject_of;
  // Warnings for the user (a backup copy or an accounting line could not be written).
  std::function<void(const std::string&)> warn;
};

class Journal {
 public:
  Journal(TaskStore& store, JournalOptions opts);

  // Records `batch` in one store transaction, then its accounting rows and backup copies.
  // When the store fails nothing else is done and the error is returned: the batch is kept
  // by the caller and committed again with the next one. The outcomes are moved out of
  // `batch` for the store's call and back before this returns (not copied: a reply string
  // each), so the batch is as it was.
  Status commit(std::vector<JournalEntry>& batch);

  uint64_t backup_failures() const { return backup_failures_; }
  const std::string& backup_error() const { return backup_error_; }

 private:
  void write_backup(const JournalEntry& e);

  TaskStore& store_;
  JournalOptions opts_;
  std::vector<Outcome> scratch_;  // the outcomes of one commit
  std::string backup_error_;
  uint64_t backup_failures_ = 0;
};

}  // namespace sb
