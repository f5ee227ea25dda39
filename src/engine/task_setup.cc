// Setting a run up: the task lock, the task store, the recipient list, the template, the
// resume checks, the throttle, the journal (accounting, backups) and the account quota.
#include <filesystem>
#include <random>

#include "base/display_text.h"
#include "base/text.h"
#include "engine/send_run.h"
#include "engine/sms_run_config.h"
#include "message/dkim.h"
#include "message/rendered_header.h"
#include "pg/pg_store.h"
#include "pg/pg_throttle.h"
#include "pg/task_open.h"
#include "returns/classify.h"
#include "returns/task_keys.h"
#include "store/account_quota.h"
#include "store/task_lock.h"

namespace sb {

int import_recipients(TaskStore& store, const std::string& path, const ImportOptions& options,
                      EngineEvents& events) {
  auto rep = store.import_csv(path, options);
  if (!rep.ok()) {
    events.note(NoteKind::kError, rep.error().describe());
    return 2;
  }
  std::string line;
  if (rep->removed > 0)
    line += "replaced the list of " + std::to_string(rep->removed) + " recipients; ";
  line += std::string(options.mode == ImportMode::kAppend ? "added" : "imported") + " " +
          std::to_string(rep->imported) + " recipients from " + path;
  if (rep->already_present > 0) {
    line += ", " + std::to_string(rep->already_present) + " already in the task skipped";
  }
  if (rep->duplicates > 0) line += ", " + std::to_string(rep->duplicates) + " duplicates skipped";
  if (rep->invalid > 0) {
    line += ", " + std::to_string(rep->invalid) + " invalid (recorded as failed)";
  }
  events.note(NoteKind::kNotice, line);
  for (const auto& p : rep->problems) events.note(NoteKind::kNotice, "  " + p);
  return 0;
}

// `send --recipients F` on a task that has its list: F is not imported again. When F is not
// the file the list came from, say how to use it: replace the list (while nothing was sent)
// or append its new rows.
void SendRun::not_imported_again() {
  auto source = store_->get_meta("sb.source");
  auto digest = store_->get_meta("sb.source_digest");
  auto now = TaskStore::file_digest(cfg_.recipients_path);
  std::string from = source.ok() && source->has_value() ? display_escape(**source) : "?";
  std::string task = display_escape(cfg_.task_path);
  std::string file = display_escape(cfg_.recipients_path);
  if (digest.ok() && digest->has_value() && now.ok() && **digest == *now) {
    events_.note(NoteKind::kNotice,
                 "task " + task + " already holds its recipient list (imported from " + from +
                     ", the same bytes as " + file + "); it is not imported again");
    return;
  }
  events_.note(NoteKind::kNotice,
               "task " + task + " already holds its recipient list (imported from " + from + "); " +
                   file +
                   " differs and is not imported again. To send to it instead while nothing "
                   "was sent: smtpblast import --task " +
                   task + " --recipients " + file +
                   " --replace; to add its new rows: the same with --append");
}

// A run that fails at start leaves no task file it created itself: with no list in it,
// it is only clutter (a mistyped --task) that later looks like a task.
int SendRun::prepare() {
  auto lock = acquire_task_lock(cfg_.task_path);
  if (!lock.ok()) {
    events_.note(NoteKind::kError, lock.error().message);
    return 2;
  }
  lock_fd_ = *lock;
  std::error_code ec;
  bool fresh = cfg_.task_path != ":memory:" && !is_shared_task(cfg_.task_path) &&
               !std::filesystem::exists(cfg_.task_path, ec) && !ec;
  int rc = prepare_task();
  if (rc != 0 && fresh && (!store_ || !store_->imported())) {
    journal_.reset();
    store_.reset();  // closed first: SQLite removes its -wal and -shm files then
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(cfg_.task_path + suffix, ec);
    }
  }
  return rc;
}

int SendRun::prepare_task() {
  auto st = open_task_store(cfg_.task_path, TaskOpen::kSend);
  if (!st.ok()) {
    events_.note(NoteKind::kError, st.error().describe());
    return 2;
  }
  store_ = std::move(st).value();
  if (cfg_.sms != nullptr) return prepare_sms_task();
  if (auto ch = store_->get_meta("sb.channel"); ch.ok() && ch->has_value() && **ch == "sms") {
    events_.note(NoteKind::kError, "task " + cfg_.task_path +
                                       " is an SMS mailing (its list holds phone numbers): "
                                       "send it with `smtpblast sms send`");
    return 2;
  }
  // A new list is imported only after the template and every file and flag below were
  // checked against its header: a run that fails at start must not leave the task holding
  // a list the user then cannot correct.
  std::vector<std::string> csv_fields;
  if (!store_->imported()) {
    if (cfg_.recipients_path.empty()) {
      events_.note(NoteKind::kError,
                   "task " + cfg_.task_path + " has no recipients yet: give --recipients FILE");
      return 2;
    }
    auto f = TaskStore::read_csv_fields(cfg_.recipients_path, cfg_.csv);
    if (!f.ok()) {
      events_.note(NoteKind::kError, f.error().describe());
      return 2;
    }
    csv_fields = std::move(f).value();
  } else if (!cfg_.recipients_path.empty()) {
    not_imported_again();
  }
  const std::vector<std::string>& fields = store_->imported() ? store_->field_names() : csv_fields;

  auto raw = read_file(cfg_.template_path);  // says why: missing, a directory, ...
  if (!raw.ok()) {
    events_.note(NoteKind::kError, "--template: " + raw.error().message);
    return 2;
  }
  // Every node of a shared task must use one key (Message-IDs, and returns matching them).
  std::string task_key;
  {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    auto key = store_->meta_or_set("task_key", buf);
    if (!key.ok()) {
      events_.note(NoteKind::kError, key.error().describe());
      return 2;
    }
    task_key = std::move(key).value();
  }
  if (!cfg_.return_path.empty()) {
    auto keys = task_match_keys(*store_, true);
    if (!keys.ok()) {
      events_.note(NoteKind::kError, keys.error().describe());
      return 2;
    }
    cfg_.verp_key = keys->verp_key;
    cfg_.task_key = task_key;
  }
  TemplateOptions topts;
  topts.default_from = cfg_.from;
  topts.task_key = task_key;
  topts.dkim = cfg_.dkim;
  topts.unsubscribe = cfg_.unsubscribe;
  topts.unsubscribe.task_id = task_key;
  auto tpl = CompiledTemplate::compile(*raw, topts);
  if (!tpl.ok()) {
    events_.note(NoteKind::kError, "--template " + cfg_.template_path + ": " + tpl.error().message);
    return 2;
  }
  tpl_ = std::make_unique<CompiledTemplate>(std::move(tpl).value());
  if (auto s = tpl_->bind(fields); !s.ok()) {
    events_.note(NoteKind::kError, "--template " + cfg_.template_path + ": " + s.error().message);
    return 2;
  }
  auto prev = store_->get_meta("template_hash");
  if (prev.ok() && prev->has_value() && **prev != tpl_->source_hash() && !cfg_.force) {
    events_.note(NoteKind::kError,
                 "--template " + cfg_.template_path +
                     " differs from the template this task was started with; give --force to "
                     "send the rest with the new one");
    return 2;
  }
  if (int rc = check_identity(); rc != 0) return rc;
  for (const std::string& w : cfg_.message_warnings) events_.note(NoteKind::kWarning, w);
  for (const std::string& w : tpl_->warnings()) events_.note(NoteKind::kWarning, w);

  if (int rc = setup_throttle(); rc != 0) return rc;
  if (!cfg_.backup_dir.empty() || !cfg_.pickup_dir.empty()) {
    const std::string& dir = cfg_.pickup_dir.empty() ? cfg_.backup_dir : cfg_.pickup_dir;
    if (auto w = check_writable_dir(dir, cfg_.pickup_dir.empty() ? "--backup-dir" : "--pickup");
        !w.ok()) {
      events_.note(NoteKind::kError, w.error().message);
      return 2;
    }
    auto n = EmlNamer::create(
        cfg_.backup_name.empty() ? EmlNamer::kDefaultPattern : cfg_.backup_name, fields);
    if (!n.ok()) {
      events_.note(NoteKind::kError, "--backup-name: " + n.error().message);
      return 2;
    }
    name_uses_subject_ = cfg_.backup_name.find("subject") != std::string::npos;
    if (cfg_.pickup_dir.empty()) {
      journal_opts_.backup_dir = cfg_.backup_dir;
      journal_opts_.namer.emplace(std::move(n).value());
      journal_opts_.title = cfg_.title;
      if (name_uses_subject_) {
        journal_opts_.subject_of = [](std::string_view eml) {
          return rendered_header(eml, "Subject");
        };
      }
    } else {
      pickup_namer_.emplace(std::move(n).value());
    }
  }
  if (int rc = setup_accounting(); rc != 0) return rc;
  journal_opts_.warn = [this](const std::string& w) { events_.note(NoteKind::kWarning, w); };
  if (!store_->imported()) {
    ImportOptions io;
    io.csv = cfg_.csv;
    if (int rc = import_recipients(*store_, cfg_.recipients_path, io, events_); rc != 0) {
      return rc;
    }
    if (store_->field_names() != fields) {  // the file changed under us since its header
      events_.note(NoteKind::kError,
                   cfg_.recipients_path + " changed while it was read; run again");
      return 2;
    }
  }
  // Recorded once the list is in: a first run that stopped before must not make the next,
  // corrected, template look like a change that needs --force.
  (void)store_->set_meta("template_hash", tpl_->source_hash());
  restore_daily_state();
  journal_ = std::make_unique<Journal>(*store_, std::move(journal_opts_));
  return 0;
}

int SendRun::setup_throttle() {
  auto tcfg = make_throttle_config(cfg_.throttle);
  if (!tcfg.ok()) {
    events_.note(NoteKind::kError, tcfg.error().message);
    return 2;
  }
  // Several nodes on one PostgreSQL mailing share its rate and daily limit (pg_throttle.h).
  ThrottleConfig local = *tcfg;
  if (is_pg_task_url(cfg_.task_path)) {
    auto url = parse_pg_task_url(cfg_.task_path);
    auto shared = url.ok() ? pg_share_limits(url->conninfo, url->task, local, clock_)
                           : Result<PgSharedLimits>(url.error());
    if (!shared.ok()) {
      events_.note(NoteKind::kError, "shared limits: " + shared.error().message);
      return 2;
    }
    pg_limits_ = std::move(shared).value();
  }
  throttle_ = std::make_unique<SharedThrottle>(local);
  throttle_->set_remote(pg_limits_.rate.get(), pg_limits_.connect.get());
  // Direct delivery: receivers push back per destination; the user's limits stay global.
  dest_tcfg_.adaptive = tcfg->adaptive;
  dest_tcfg_.aimd = tcfg->aimd;
  dest_tcfg_.quota_pause_ms = tcfg->quota_pause_ms;
  dest_tcfg_.quota_pause_max_ms = tcfg->quota_pause_max_ms;
  return 0;
}

int SendRun::setup_accounting() {
  if (!cfg_.accounting_path.empty()) {
    auto a = AccountingLog::open(cfg_.accounting_path);
    if (!a.ok()) {
      events_.note(NoteKind::kError, "--accounting: " + a.error().message);
      return 2;
    }
    journal_opts_.accounting = std::move(a).value();
    // The shipped bounce rules label each refusal (the returns classifier, issue 14).
    if (auto c = Classifier::create(); c.ok()) {
      auto cl = std::make_shared<Classifier>(std::move(c).value());
      journal_opts_.categorize = [cl](int code, const std::string& reply) {
        return cl->classify_reply(code, reply).category;
      };
    }
  }
  return 0;
}

void SendRun::restore_daily_state() {
  // The rolling daily count lives in the task, so a limit holds across runs.
  if (auto ds = store_->get_meta("daily_state"); ds.ok() && ds->has_value()) {
    if (auto r = throttle_->restore_daily_state(**ds); !r.ok()) {
      events_.note(NoteKind::kWarning, "daily count in " + cfg_.task_path + " unreadable (" +
                                           r.error().message + "); starting at 0");
    }
  }
}

int SendRun::check_identity() {
  // What the recipients see and what the receivers judge: a resumed task keeps them unless
  // the user says otherwise (like a changed template).
  std::string sender = cfg_.sms != nullptr ? cfg_.sms->sender
                       : cfg_.from.empty() ? tpl_->from_address()
                                           : cfg_.from;
  // The relay's host, not its port: the same provider on 587 or 465 is the same sender to
  // the receivers.
  std::string relay = cfg_.sms != nullptr        ? "sms provider " + cfg_.sms->provider
                      : !cfg_.pickup_dir.empty() ? "pickup"
                      : cfg_.direct              ? "direct delivery"
                      : cfg_.relay != nullptr    ? "relay " + cfg_.relay->host
                                                 : "";
  for (char& c : relay) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string dkim;
  for (const auto& signer : cfg_.dkim) {
    if (dkim.find(signer->domain()) == std::string::npos) {
      dkim += (dkim.empty() ? "" : ",") + signer->domain();
    }
  }
  struct Item {
    const char* key;
    const char* what;
    const std::string& now;
  };
  const bool sms = cfg_.sms != nullptr;
  const Item items[] = {{"sender",
                         sms ? "the SMS sender (--sender, or the provider's `from`)"
                             : "the envelope sender (--from, or the template's From:)",
                         sender},
                        {"relay",
                         sms ? "the SMS provider (--provider)"
                             : "the relay (--relay, --preset, --direct or --pickup)",
                         relay},
                        {"dkim_domain", "the DKIM signing domain (--dkim-domain)", dkim}};
  for (const Item& it : items) {
    auto prev = store_->get_meta(it.key);
    if (!prev.ok() || !prev->has_value() || **prev == it.now) continue;
    const std::string was = (*prev)->empty() ? "none" : **prev;
    const std::string is = it.now.empty() ? "none" : it.now;
    if (cfg_.force) {
      events_.note(NoteKind::kWarning, std::string("--force: ") + it.what + " changes from '" +
                                           was + "' to '" + is + "'");
      continue;
    }
    events_.note(NoteKind::kError, "task " + cfg_.task_path + " was started with " + it.what +
                                       " '" + was + "'; this run has '" + is +
                                       "'; give --force to send the rest with the new one");
    return 2;
  }
  for (const Item& it : items) (void)store_->set_meta(it.key, it.now);
  return 0;
}

int SendRun::open_account_quota() {
  if (cfg_.throttle.daily_limit == 0) return 0;
  std::string path = cfg_.quota_store.empty() ? AccountQuota::default_path() : cfg_.quota_store;
  if (is_pg_task_url(cfg_.task_path)) {
    // Every node and run of the mailing counts against the account's rows in its database.
    auto url = parse_pg_task_url(cfg_.task_path);
    if (url.ok()) path = url->conninfo;
  }
  auto q = open_quota_source(path);
  if (!q.ok()) {
    events_.note(NoteKind::kError,
                 "--daily-limit counts per account in the quota store: " + q.error().message);
    return 2;
  }
  if (cfg_.sms != nullptr) {
    account_key_ = cfg_.sms->account;  // the provider's type, address and account
  } else {
    const RelaySetup& r = *cfg_.relay;
    account_key_ = account_key(r.credentials != nullptr ? r.credentials->user() : std::string(),
                               cfg_.from, r.host, cfg_.direct);
  }
  auto quota = std::move(q).value();
  if (auto* pq = dynamic_cast<PgQuota*>(quota.get()); pq != nullptr) {
    // This node's holds live with its lease: other nodes wait for what it holds while it is
    // alive, and no longer once it died.
    if (auto* pg = dynamic_cast<PgTaskStore*>(store_.get()); pg != nullptr && pg->epoch() != 0) {
      pq->set_holder(pg->node_name() + " (epoch " + std::to_string(pg->epoch()) + ")",
                     pg_lease_ms());
    }
  }
  // For `status`: which account and store this task's sends count against.
  (void)store_->set_meta("account", account_key_);
  (void)store_->set_meta("account_quota_store", quota->path());
  (void)store_->set_meta("account_daily_limit", std::to_string(cfg_.throttle.daily_limit));
  quota_ = std::move(quota);
  return 0;
}

}  // namespace sb
