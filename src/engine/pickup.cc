// --pickup: no SMTP and no workers. This thread claims through the planner, renders
// (undotted) and writes each message as an .eml file; a recipient is sent once its file has
// its final name. Outcomes go through the journal; the ledger settles each one.
#include <pthread.h>

#include <csignal>

#include "engine/planner.h"
#include "engine/send_run.h"
#include "message/rendered_header.h"

namespace sb {

void SendRun::run_pickup() {
  t0_ = clock_.mono_ms();
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
  ledger_ = std::make_unique<Ledger>();
  Planner::Options po;
  po.suppress = cfg_.suppress;
  Planner planner(*store_, *ledger_, clock_, nullptr, po);
  std::vector<RecipientRow> rows;
  std::vector<JournalEntry> outcomes;
  RenderedMessage msg;
  uint64_t started = 0;
  auto commit = [&] {
    if (outcomes.empty()) return;
    if (auto s = journal_->commit(outcomes); !s.ok()) {
      if (store_error_.empty()) {
        events_.note(NoteKind::kError, "cannot record outcomes: " + s.error().describe());
        store_error_ = "task store write failed: " + s.error().message;
      }
      return;
    }
    for (const JournalEntry& e : outcomes) {
      if (e.out.status_only) continue;
      if (e.out.status == RcptStatus::kSuppressed) {
        ++suppressed_;
        continue;
      }
      ++attempts_;
      if (e.out.status == RcptStatus::kSent) ++sent_;
      if (e.out.status == RcptStatus::kFailed) ++failed_;
    }
    outcomes.clear();
  };
  uint64_t last_commit = clock_.mono_ms();
  bool stop = false;
  while (!stop && !planner.exhausted()) {
    if (!planner.claim_next(rows, outcomes)) {
      events_.note(NoteKind::kError, planner.error_text());
      failure_ = planner.error();
      break;
    }
    size_t i = 0;
    for (; i < rows.size(); ++i) {
      timespec zero{0, 0};
      if (sigtimedwait(&sigs, nullptr, &zero) > 0) {
        events_.note(NoteKind::kNotice, "\nstopping: a later run resumes");
        stop = true;
      } else if (!store_error_.empty()) {
        failure_ = store_error_;
        stop = true;
      } else if (cfg_.limit != 0 && started++ >= cfg_.limit) {
        events_.note(NoteKind::kNotice, "--limit " + std::to_string(cfg_.limit) +
                                            " reached; a later run writes the rest");
        stop = true;
      }
      if (stop) break;
      const RecipientRow& row = rows[i];
      RenderInput in;
      in.email = row.email;
      in.values = &row.values;
      in.recipient_id = row.id;
      in.now = clock_.wall_s();
      msg.clear();
      JournalEntry& r = outcomes.emplace_back();
      r.time_ms = clock_.wall_ms();
      r.email = row.email;
      r.out.id = row.id;
      r.out.attempts = row.attempts + 1;
      r.out.time = in.now;
      if (Status st = tpl_->render(in, false, msg); !st.ok()) {
        r.out.status = RcptStatus::kFailed;
        r.out.reply = st.error().message.substr(0, 512);
        ledger_->settle(row.id, Settle::kFailed);
      } else {
        EmlNameVars nv;
        nv.task_title = cfg_.title;
        std::string subject;
        if (name_uses_subject_) {
          // Only the header block is needed; the first pieces hold it.
          std::string head;
          for (std::string_view p : msg.pieces) {
            head.append(p);
            if (head.find("\r\n\r\n") != std::string::npos) break;
          }
          subject = rendered_header(head, "Subject");
        }
        nv.subject = subject;
        nv.recipient = row.email;
        nv.time = in.now;
        nv.id = row.id;
        nv.values = &row.values;
        std::string final_path;
        // A pickup service reads these, often as another user: the umask decides.
        if (auto w = write_eml_atomically(cfg_.pickup_dir, pickup_namer_->name(nv), msg.pieces,
                                          &final_path, false, kSharedFile);
            !w.ok()) {
          // The directory went away or filled up: stop; this one is not sent.
          events_.note(NoteKind::kError, "--pickup: " + w.error().message);
          failure_ = "--pickup: " + w.error().message;
          r.out.status_only = true;
          r.out.status = row.status;
          ledger_->settle(row.id, Settle::kReleased);
          ++i;
          stop = true;
          break;
        }
        r.out.status = RcptStatus::kSent;
        r.out.reply = "written to " + final_path;
        ledger_->settle(row.id, Settle::kSent);
      }
      uint64_t now = clock_.mono_ms();
      if (now - last_commit >= cfg_.commit_interval_ms) {
        commit();
        last_commit = now;
      }
    }
    for (; i < rows.size(); ++i) {  // claimed, not written: back to their earlier status
      add_released(outcomes, rows[i]);
      ledger_->settle(rows[i].id, Settle::kReleased);
    }
    commit();
    last_commit = clock_.mono_ms();
    if (!store_error_.empty()) {
      failure_ = store_error_;
      break;
    }
  }
  commit();
  ledger_->close_run();
  timespec zero{0, 0};
  while (sigtimedwait(&sigs, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

}  // namespace sb
