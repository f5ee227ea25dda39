// Setting an SMS run up (issue 19): the task's kind, its list of phone numbers (E.164 with the
// default country), the SMS text, then the same throttle, accounting and journal as e-mail.
#include "base/text.h"
#include "engine/channel.h"
#include "engine/send_run.h"
#include "engine/sms_run_config.h"
#include "sms/phone.h"
#include "store/sms_receipts.h"

namespace sb {

namespace {

// The store's key normaliser for SMS lists: libphonenumber with the default country in ctx.
Result<std::string> phone_key(std::string_view v, const void* ctx) {
  return normalize_e164(v, *static_cast<const std::string*>(ctx));
}

}  // namespace

int SendRun::prepare_sms_task() {
  const SmsRunConfig& sms = *cfg_.sms;
  if (store_->imported()) {
    auto ch = store_->get_meta("sb.channel");
    if (!ch.ok() || !ch->has_value() || **ch != "sms") {
      events_.note(NoteKind::kError, "task " + cfg_.task_path +
                                         " is an e-mail mailing (its list holds addresses): "
                                         "send it with `smtpblast send`");
      return 2;
    }
    if (!cfg_.recipients_path.empty()) not_imported_again();
  } else if (cfg_.recipients_path.empty()) {
    events_.note(NoteKind::kError,
                 "task " + cfg_.task_path + " has no recipients yet: give --recipients FILE");
    return 2;
  }
  std::vector<std::string> fields;
  if (store_->imported()) {
    fields = store_->field_names();
  } else {
    auto f = TaskStore::read_csv_fields(cfg_.recipients_path, cfg_.csv, sms.phone_column);
    if (!f.ok()) {
      events_.note(NoteKind::kError, f.error().describe());
      return 2;
    }
    fields = std::move(f).value();
  }
  auto raw = read_file(cfg_.template_path);
  if (!raw.ok()) {
    events_.note(NoteKind::kError, "--template: " + raw.error().message);
    return 2;
  }
  auto tpl = SmsTemplate::compile(*raw);
  if (!tpl.ok()) {
    events_.note(NoteKind::kError, "--template " + cfg_.template_path + ": " + tpl.error().message);
    return 2;
  }
  sms_tpl_ = std::make_unique<SmsTemplate>(std::move(tpl).value());
  if (auto s = sms_tpl_->bind(fields); !s.ok()) {
    events_.note(NoteKind::kError, "--template " + cfg_.template_path + ": " + s.error().message);
    return 2;
  }
  auto prev = store_->get_meta("template_hash");
  if (prev.ok() && prev->has_value() && **prev != sms_tpl_->source_hash() && !cfg_.force) {
    events_.note(NoteKind::kError,
                 "--template " + cfg_.template_path +
                     " differs from the text this task was started with; give --force to "
                     "send the rest with the new one");
    return 2;
  }
  if (int rc = check_identity(); rc != 0) return rc;
  if (int rc = setup_throttle(); rc != 0) return rc;
  if (int rc = setup_accounting(); rc != 0) return rc;
  journal_opts_.warn = [this](const std::string& w) { events_.note(NoteKind::kWarning, w); };
  if (!store_->imported()) {
    ImportOptions io;
    io.csv = cfg_.csv;
    io.key_column = sms.phone_column;
    io.normalize = phone_key;
    io.normalize_ctx = &sms.country;
    if (int rc = import_recipients(*store_, cfg_.recipients_path, io, events_); rc != 0) {
      return rc;
    }
    if (store_->field_names() != fields) {
      events_.note(NoteKind::kError,
                   cfg_.recipients_path + " changed while it was read; run again");
      return 2;
    }
  }
  (void)store_->set_meta("template_hash", sms_tpl_->source_hash());
  restore_daily_state();
  journal_ = std::make_unique<Journal>(*store_, std::move(journal_opts_));
  return 0;
}

void SendRun::apply_sms_inbound(SmsInboundMsg& m) {
  // Either store: the SQLite file or the PostgreSQL task (TaskStore::apply_receipt).
  for (const SmsReceiptUpdate& u : m.receipts) {
    auto r = store_->apply_receipt(u);
    if (!r.ok()) {
      events_.note(NoteKind::kWarning, "delivery receipt: " + r.error().message);
      continue;
    }
    ++sms_receipts_;
    if (r->effect == SmsReceiptEffect::kUnknownId) ++sms_receipts_unknown_;
  }
  for (const std::string& n : m.stops) {
    if (auto r = store_->add_suppression(n, "STOP reply"); r.ok()) {
      ++sms_stops_;
      events_.note(NoteKind::kNotice, n + " replied STOP: suppressed in this task");
    }
  }
}

Status find_partial_sms(TaskStore& store, RowsCmd& c) {
  for (size_t i = 0; i < c.rows.size(); ++i) {
    const RecipientRow& r = c.rows[i];
    // Only a recipient an earlier attempt left deferred, or a killed run in flight, can have a
    // message partly accepted; an unsent one (new, or reset) is sent whole.
    if (r.status != RcptStatus::kDeferred && r.status != RcptStatus::kInFlight) continue;
    auto p = store.partial_sms(r.id);
    if (!p.ok()) return p.error();
    if (!p->resumable()) continue;
    c.sms_resume.push_back(SmsResume{i, std::move(p->ids), static_cast<uint8_t>(p->concat_ref)});
  }
  return {};
}

void SendRun::find_partial_sms(RowsCmd& c) {
  if (auto s = sb::find_partial_sms(*store_, c); !s.ok() && !sms_partial_warned_) {
    sms_partial_warned_ = true;
    events_.note(NoteKind::kWarning, "partly sent SMS are sent whole: " + s.error().message);
  }
}

}  // namespace sb
