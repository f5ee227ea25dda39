// RunConfig: everything one send run needs, owned (no pointers into command-line objects).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/direct_lookup.h"
#include "message/template.h"
#include "smtp/relay_setup.h"
#include "smtp/session.h"
#include "store/csv_reader.h"
#include "store/suppression.h"
#include "throttle/throttle.h"

namespace sb {

// --progress: a bar redrawn on a terminal, a log line every 10 s, one JSON object a second.
enum class ProgressStyle : uint8_t { kNone, kBar, kPlain, kJsonl };

class DkimSigner;
struct SmsRunConfig;
namespace metrics {
class RunMetrics;
}

struct RunConfig {
  std::string task_path;
  std::string template_path;
  std::string recipients_path;
  CsvOptions csv;  // --csv-encoding, --csv-delimiter
  // Address, TLS, credentials (prepare_relay / prepare_direct); shared, never copied: it
  // holds the TLS context and the credentials. Null only with --pickup.
  std::shared_ptr<const RelaySetup> relay;
  std::string from;
  uint32_t connections = 1;
  uint32_t per_connection = 100;
  uint32_t workers = 1;
  uint32_t max_attempts = 3;
  uint32_t retry_delay_ms = 5000;
  uint32_t window = kDefaultPipelineWindow;
  uint64_t pipeline_bytes = kDefaultPipelineBytes;  // --pipeline-bytes
  bool pipelining = true;
  bool chunking = true;
  bool force = false;
  // --progress: how the CLI shows the run on stderr (the engine counts the recipients to do
  // only when one is on).
  ProgressStyle progress = ProgressStyle::kNone;
  bool json = false;  // --json: the summary as one JSON object on stdout
  // The daily limit also counts per sending account (the relay's user, or the envelope
  // sender) in this shared file (--quota-store; AccountQuota::default_path()); see README.
  std::string quota_store;
  ThrottleFlags throttle;   // --rate, --burst, --daily-limit, --block-*, --connect-rate
  bool wait_daily = false;  // --wait: sleep through a reached daily limit instead of stopping
  Timeouts timeouts;
  uint32_t stop_timeout_ms = 30000;  // --stop-timeout: after a first signal, then abort
  uint32_t commit_interval_ms =
      100;                          // --commit-interval: bounds the duplicate window after kill -9
  uint64_t limit = 0;               // --limit: messages this run may start (0: no limit)
  bool reset_errors_after = false;  // --reset-errors-after
  std::shared_ptr<const SuppressionList> suppress;  // --suppress, loaded; null or empty: none
  std::string accounting_path;                      // --accounting FILE (.csv / .jsonl)
  std::string backup_dir;               // --backup-dir: an .eml copy of every message sent
  std::string backup_name;              // --backup-name pattern (default EmlNamer::kDefaultPattern)
  std::string title;                    // --title: {{task_title}} in --backup-name
  std::string pickup_dir;               // --pickup: write .eml files there instead of SMTP
  uint32_t retry_max_ms = 3600 * 1000;  // the longest retry delay (--retry-max)

  // --direct: no relay; each recipient goes to its domain's mail exchangers. `relay` then
  // carries the HELO name, TLS mode and context, and the connect timeout.
  bool direct = false;
  DirectLookup lookup;               // --dns-server, --dns-timeout, --mx-port, --ipv*-only
  uint32_t max_conn_per_domain = 5;  // --max-connections-per-domain
  uint32_t max_rcpt_per_txn = 50;    // --max-rcpt-per-txn (same content for all only)

  // What every message gets (--dkim-*, --unsubscribe-*): copied into the template options.
  std::vector<std::shared_ptr<const DkimSigner>> dkim;
  UnsubscribeOptions unsubscribe;             // task_id is filled by the run (the task key)
  std::vector<std::string> message_warnings;  // key file modes, short RSA keys, ...

  // --return-path 'bounces+{{id}}@b.example': a VERP envelope sender per recipient, signed
  // with the task's VERP key (returns/verp.h); the run fills verp_key and task_key.
  std::string return_path;
  std::string verp_key;
  std::string task_key;

  // --metrics: the cells the run counts into, served by the command line's MetricsServer
  // (which outlives the run for --metrics-linger). Null: counted, but not served.
  std::shared_ptr<metrics::RunMetrics> metrics;

  // `sms send` (issue 19): an SMS mailing; the template is the SMS text, the list's key a
  // phone number. Null: e-mail.
  std::shared_ptr<const SmsRunConfig> sms;
};

}  // namespace sb
