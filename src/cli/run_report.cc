// Summary text and JSON of a send run; the throttle's state as fields; the account key.
#include "cli/run_report.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "base/display_text.h"
#include "cli/pipeline.h"
#include "cli/progress_line.h"
#include "pg/pg_throttle.h"
#include "store/account_quota.h"

namespace sb {

namespace {

std::string num(uint64_t n) { return std::to_string(n); }

std::string plural(uint64_t n, const char* one, const char* many) {
  return num(n) + " " + (n == 1 ? one : many);
}

nlohmann::json counts_json(const StatusCounts& c) {
  nlohmann::json j;
  j["total"] = c.total;
  for (RcptStatus s : {RcptStatus::kUnsent, RcptStatus::kSent, RcptStatus::kDeferred,
                       RcptStatus::kFailed, RcptStatus::kSuppressed, RcptStatus::kInFlight}) {
    std::string key = status_name(s);
    for (char& ch : key) ch = ch == '-' ? '_' : ch;
    j[key] = c.get(s);
  }
  if (c.unknown > 0) j["unknown"] = c.unknown;  // as in `status --json`
  return j;
}

}  // namespace

std::string summary_text(const RunReport& r) {
  std::string out = "this run: " + plural(r.sent, "recipient", "recipients") + " sent, " +
                    num(r.failed) + " failed, " + num(r.deferred) + " deferred";
  if (r.deferred > 0) out += " after " + plural(r.deferred_attempts, "attempt", "attempts");
  if (r.suppressed > 0) out += ", " + num(r.suppressed) + " suppressed";
  char tail[96];
  std::snprintf(tail, sizeof tail, " in %.1f s (%.0f msgs/s)", r.seconds,
                r.seconds > 0 ? static_cast<double>(r.sent) / r.seconds : 0.0);
  out += "; " + plural(r.attempts, "delivery attempt", "delivery attempts") + tail + "\n";
  const StatusCounts& c = r.task;
  out += "task:     " + plural(c.total, "recipient", "recipients") + ": " +
         num(c.get(RcptStatus::kSent)) + " sent, " + num(c.get(RcptStatus::kFailed)) + " failed, " +
         num(c.get(RcptStatus::kDeferred)) + " deferred, " +
         num(c.get(RcptStatus::kUnsent) + c.get(RcptStatus::kInFlight)) + " unsent";
  if (c.get(RcptStatus::kSuppressed) > 0) {
    out += ", " + num(c.get(RcptStatus::kSuppressed)) + " suppressed";
  }
  if (c.unknown > 0) out += ", " + num(c.unknown) + " with an unknown status";
  if (!r.account.empty()) {
    uint64_t left = r.account_used >= r.account_limit ? 0 : r.account_limit - r.account_used;
    out += "\naccount:  " + r.account + ": " + num(r.account_used) + " of " + num(r.account_limit) +
           " recipients in the last 24 h, " + num(left) +
           " left (shared by every task of this account; " + r.quota_store + ")";
  }
  return out;
}

nlohmann::json summary_json(const RunReport& r) {
  nlohmann::json j;
  j["ok"] = r.exit_code == 0;
  j["exit_code"] = r.exit_code;
  j["stopped_by"] = r.stopped_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.stopped_by);
  if (!r.error.empty()) j["error"] = r.error;
  j["resume_at"] = r.resume_at_ms != 0 ? nlohmann::json(iso_utc(r.resume_at_ms)) : nullptr;
  nlohmann::json run;
  run["recipients_sent"] = r.sent;
  run["recipients_failed"] = r.failed;
  run["recipients_deferred"] = r.deferred;
  run["recipients_suppressed"] = r.suppressed;
  run["deferred_attempts"] = r.deferred_attempts;
  run["attempts"] = r.attempts;
  run["seconds"] = r.seconds;
  // As the text summary and --progress jsonl's objects compute it.
  run["msgs_per_s"] =
      r.seconds > 0 ? std::round(static_cast<double>(r.sent) / r.seconds * 10) / 10 : 0.0;
  j["run"] = run;
  j["task"] = counts_json(r.task);
  j["throttle"] = throttle_json(r.throttle);
  if (!r.account.empty()) {
    nlohmann::json a;
    a["account"] = r.account;
    a["quota_store"] = r.quota_store;
    a["daily_limit"] = r.account_limit;
    a["used"] = r.account_used;
    a["remaining"] = r.account_used >= r.account_limit ? 0 : r.account_limit - r.account_used;
    j["account"] = a;
  } else {
    j["account"] = nullptr;
  }
  return j;
}

namespace {
std::string meta(TaskStore& store, const char* key) {
  auto v = store.get_meta(key);
  return v.ok() && v->has_value() ? **v : std::string();
}
}  // namespace

AccountStatus account_status(TaskStore& store) {
  AccountStatus a;
  a.json = nullptr;
  std::string account = meta(store, "account");
  std::string path = meta(store, "account_quota_store");
  if (account.empty() || path.empty()) return a;
  uint64_t limit = std::strtoull(meta(store, "account_daily_limit").c_str(), nullptr, 10);
  // A PostgreSQL mailing counts the account in its database (path: its conninfo).
  auto q = open_quota_source(path);
  auto used = q.ok() ? (*q)->used(account, static_cast<uint64_t>(std::time(nullptr)) * 1000)
                     : Result<uint64_t>(q.error());
  if (!used.ok()) {
    a.text = "account:    " + account + ": quota store unreadable: " + used.error().message;
    a.json = {{"account", account}, {"quota_store", path}, {"error", used.error().message}};
    return a;
  }
  uint64_t left = *used >= limit ? 0 : limit - *used;
  a.text = "account:    " + account + ": " + num(*used) + " of " + num(limit) +
           " recipients in the last 24 h (every task of this account), " + num(left) +
           " remaining; quota store " + path;
  a.json = {{"account", account},
            {"quota_store", path},
            {"daily_limit", limit},
            {"used", *used},
            {"remaining", left}};
  // A shared quota: what live nodes hold reserved and have not sent yet (counted as used
  // above; a node that finds no room waits while any is held).
  auto holds = (*q)->holds(account);
  if (holds.ok() && !holds->empty()) {
    nlohmann::json hj = nlohmann::json::array();
    a.text += "\n            held unsent by live nodes:";
    for (const QuotaSource::Hold& h : *holds) {
      a.text += " " + h.holder + " " + num(h.n) + " (until " + h.until + ")";
      hj.push_back({{"holder", h.holder}, {"n", h.n}, {"until", h.until}});
    }
    a.json["held"] = hj;
  }
  return a;
}

void add_status_json(TaskStore& store, const AccountStatus& account, nlohmann::json& j) {
  std::string fields = meta(store, "throttle_json");
  nlohmann::json t = nlohmann::json::parse(fields, nullptr, false);
  j["throttle"] = fields.empty() || t.is_discarded() ? nlohmann::json(nullptr) : t;
  std::string text = meta(store, "throttle");
  j["throttle_text"] = text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
  j["account"] = account.json;
}

}  // namespace sb

namespace sb {

StderrEvents::StderrEvents(ProgressStyle style, bool terminal)
    : style_(style), terminal_(terminal) {}

void StderrEvents::note(NoteKind kind, const std::string& text) {
  switch (kind) {
    case NoteKind::kError: std::fprintf(stderr, "smtpblast: %s\n", text.c_str()); break;
    case NoteKind::kWarning: std::fprintf(stderr, "smtpblast: warning: %s\n", text.c_str()); break;
    case NoteKind::kNotice: std::fprintf(stderr, "%s\n", text.c_str()); break;
  }
}

void StderrEvents::progress(const ProgressView& p, bool final_line) {
  switch (style_) {
    case ProgressStyle::kNone: return;
    case ProgressStyle::kJsonl:
      // About once a second (the engine's cadence), flushed: a pipeline reads it live.
      std::fprintf(stderr, "%s\n", progress_json(p, final_line).dump().c_str());
      std::fflush(stderr);
      return;
    case ProgressStyle::kBar:
      if (terminal_) {
        std::fprintf(stderr, "\r\033[K%s", progress_bar_line(p, terminal_columns()).c_str());
        if (final_line) std::fprintf(stderr, "\n");
        return;
      }
      // No terminal to redraw on: the bar as a whole line now and then, no control codes.
      if (!final_line && p.seconds - last_line_s_ < 9.0) return;
      last_line_s_ = p.seconds;
      std::fprintf(stderr, "%s\n", progress_bar_line(p, 100).c_str());
      return;
    case ProgressStyle::kPlain:
      // No terminal (cron, CI, a pipe): a whole line at most every 10 s, for a log; the summary
      // says the rest at the end.
      if (final_line || p.seconds - last_line_s_ < 9.0) return;
      last_line_s_ = p.seconds;
      std::fprintf(stderr, "%s\n", progress_plain_line(p).c_str());
      return;
  }
}

int exit_code_for(const RunResult& r) {
  // The first that applies: configuration/environment, the relay, a signal, a limit, failures.
  if (!r.store_error.empty() || !r.account_error.empty()) return kExitUsage;
  if (!r.failure.empty()) {
    // --pickup could not write its directory; the DNS resolver could not be set up; nothing
    // could be delivered at all (most likely a wrong relay address or port).
    if (r.pickup || r.failure.rfind("DNS resolver", 0) == 0) return kExitUsage;
    if (r.fatal) return kExitRelay;  // credentials, sender refused, TLS
    // Nothing ever answered: most likely a wrong address or port. Otherwise the relay
    // refused us (STARTTLS refused again and again) or went away mid-run.
    return r.rep.attempts == 0 && !r.relay_answered ? kExitUsage : kExitRelay;
  }
  if (r.all_done) return kExitDone;
  if (r.signals > 0) return kExitInterrupted;
  if (r.daily_reported || r.limit_reported) return kExitLimit;
  return kExitSomeFailed;
}

int report_run(const RunConfig& cfg, RunResult& r) {
  if (r.setup_exit != 0) return r.setup_exit;
  if (r.counts_failed) return kExitUsage;
  RunReport& rep = r.rep;
  std::fprintf(stderr, "%s\n", summary_text(rep).c_str());
  if (r.backup_failures > 0) {
    std::fprintf(stderr, "smtpblast: %llu backup copies could not be written (%s)\n",
                 static_cast<unsigned long long>(r.backup_failures), r.backup_error.c_str());
  }
  const ThrottleSnapshot& snap = rep.throttle;
  if (snap.configured_rate_per_s > 0 || snap.daily_limit > 0 || snap.block_size > 0 ||
      snap.pushbacks > 0) {
    std::fprintf(stderr, "throttle: %s\n", describe(snap).c_str());
  }
  if (!r.daily_message.empty()) std::fprintf(stderr, "%s\n", r.daily_message.c_str());
  if (r.direct) {
    std::fprintf(stderr,
                 "dns: %llu domains, %llu MX lookups, %llu queries, %.1f ms CPU; "
                 "%llu recipients handed to the worker owning their destination\n",
                 static_cast<unsigned long long>(r.dns.domains),
                 static_cast<unsigned long long>(r.dns.lookups),
                 static_cast<unsigned long long>(r.dns.queries),
                 static_cast<double>(r.dns.cpu_ns) / 1e6,
                 static_cast<unsigned long long>(r.dns.handed_over));
  }
  if (r.pushed_dests > 0) {
    std::fprintf(stderr,
                 "push-back: %llu replies from %llu destinations (%llu slow down, %llu quota): "
                 "their rates cut %llu times, paused %llu times; the others kept their pace\n",
                 static_cast<unsigned long long>(r.pushback.pushbacks),
                 static_cast<unsigned long long>(r.pushed_dests),
                 static_cast<unsigned long long>(r.pushback.slowdowns),
                 static_cast<unsigned long long>(r.pushback.quota_replies),
                 static_cast<unsigned long long>(r.pushback.rate_cuts),
                 static_cast<unsigned long long>(r.pushback.quota_pauses));
  }
  if (!r.failure.empty()) {
    std::fprintf(stderr, "smtpblast: run stopped: %s\n", display_escape(r.failure).c_str());
  }
  rep.exit_code = exit_code_for(r);
  switch (rep.exit_code) {
    case kExitUsage: rep.stopped_by = "error"; break;
    case kExitRelay: rep.stopped_by = "relay"; break;
    case kExitInterrupted: rep.stopped_by = "signal"; break;
    case kExitLimit:
      rep.stopped_by = !r.daily_reported    ? "limit"
                       : r.daily_by_account ? "account-daily-limit"
                                            : "daily-limit";
      break;
    default: break;
  }
  if (!r.failure.empty()) rep.error = r.failure;
  if (rep.exit_code != kExitLimit || !r.daily_reported) rep.resume_at_ms = 0;
  if (r.reset_asked) {
    if (!r.reset_error.empty()) {
      std::fprintf(stderr, "smtpblast: --reset-errors-after: %s\n", r.reset_error.c_str());
      return kExitUsage;
    }
    std::fprintf(stderr,
                 "--reset-errors-after: failed and deferred recipients (%llu) are unsent "
                 "again (except addresses rejected at import)\n",
                 static_cast<unsigned long long>(r.reset_count));
  }
  if (rep.exit_code != kExitDone && rep.exit_code != kExitSomeFailed) {
    std::fprintf(stderr, "exit code %d (%s)\n", rep.exit_code, rep.stopped_by.c_str());
  }
  if (cfg.json) {
    std::printf(
        "%s\n",
        summary_json(rep).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
    mark_json_printed();
  }
  return rep.exit_code;
}

}  // namespace sb
