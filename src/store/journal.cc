// The journal: outcomes into the task store, then the accounting log and the backup copies.
#include "store/journal.h"

namespace sb {

void add_released(std::vector<JournalEntry>& out, const RecipientRow& row) {
  JournalEntry& e = out.emplace_back();
  e.out.id = row.id;
  e.out.status = row.status;
  e.out.status_only = true;
}

Journal::Journal(TaskStore& store, JournalOptions opts) : store_(store), opts_(std::move(opts)) {}

Status Journal::commit(std::vector<JournalEntry>& batch) {
  if (batch.empty()) return Status{};
  scratch_.clear();
  for (JournalEntry& e : batch) scratch_.push_back(std::move(e.out));
  Status recorded = store_.record(scratch_);
  for (size_t i = 0; i < batch.size(); ++i) batch[i].out = std::move(scratch_[i]);
  if (!recorded.ok()) return recorded;
  for (const JournalEntry& e : batch) {
    const Outcome& o = e.out;
    if (o.status_only) continue;  // a release: no attempt was made
    if (opts_.accounting) {
      AccountingRecord a;
      a.time_ms = e.time_ms;
      a.recipient = e.email;
      a.status = o.status;
      a.code = o.code;
      a.reply = o.reply;
      a.remote_host = e.peer_ip;
      a.remote_port = e.peer_port;
      a.tls_version = e.tls_version;
      a.attempt = o.attempts;
      a.connection_id = e.conn_id;
      a.elapsed_ms = e.elapsed_ms;
      if (o.status != RcptStatus::kSent && opts_.categorize) {
        a.category = opts_.categorize(o.code, o.reply);
      }
      opts_.accounting->add(a);
    }
    if (!e.eml.empty() && o.status == RcptStatus::kSent) write_backup(e);
  }
  if (opts_.accounting) {
    if (auto f = opts_.accounting->flush(); !f.ok() && backup_error_.empty() && opts_.warn) {
      // The task store is the record of truth; the log keeps the lines and retries.
      opts_.warn("--accounting: " + f.error().message);
    }
  }
  return Status{};
}

void Journal::write_backup(const JournalEntry& e) {
  EmlNameVars nv;
  nv.task_title = opts_.title;
  // {{subject}} is this recipient's Subject as rendered, not the template's placeholders.
  std::string subject = opts_.subject_of ? opts_.subject_of(e.eml) : std::string();
  nv.subject = subject;
  nv.recipient = e.email;
  nv.time = e.out.time;
  nv.id = e.out.id;
  nv.values = &e.values;
  std::vector<std::string_view> pieces{e.eml};
  if (auto w = write_eml_atomically(opts_.backup_dir, opts_.namer->name(nv), pieces, nullptr);
      !w.ok()) {
    ++backup_failures_;
    if (backup_error_.empty()) {
      backup_error_ = w.error().message;
      if (opts_.warn) opts_.warn("--backup-dir: " + backup_error_);
    }
  }
}

}  // namespace sb
