// Job: one recipient in flight in a worker (row, rendered message, transaction), and its free-list.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/text.h"  // domain_of, is_ascii
#include "dns/mx_resolver.h"
#include "engine/ledger.h"
#include "message/template.h"
#include "smtp/session.h"
#include "store/task_store.h"

namespace sb {

class Destination;

struct Job {
  RecipientRow row;
  Obligation ob;                // consumed when the recipient settles (or moves on in a hand-over)
  std::string rcpt;             // RCPT TO when it differs from row.email (IDN domain)
  std::string verp_from;        // --return-path: this recipient's envelope sender
  std::string envid;            // --return-path: the DSN envelope id "<task key>.<id>"
  Destination* dest = nullptr;  // its queue, once routed
  Job* leader = nullptr;        // the job whose message and transaction carry this one
  uint64_t sent_at = 0;         // wall-clock ms when the throttle let it go
  RenderedMessage msg;
  int64_t rendered_at = 0;  // the render's "now" (Date:), to render the backup copy alike
  Txn txn;
  uint32_t run_attempts = 0;              // attempts in this run (0: no outcome recorded yet)
  RcptStatus last = RcptStatus::kUnsent;  // its latest outcome in this run, when run_attempts > 0
  bool retry = false;
  bool retry_now = false;  // "too many recipients": the next transaction, without a backoff
  uint32_t not_tried = 0;  // of run_attempts, the "too many recipients" ones (no attempt used)

  const std::string& rcpt_address() const { return rcpt.empty() ? row.email : rcpt; }
};

// Jobs are reused (their buffers with them): the hot path allocates no Job per message.
class JobPool {
 public:
  Job* take();
  // The job's obligation must be consumed (settled or handed over) before it comes back.
  void give_back(Job* j);
  size_t size() const { return jobs_.size(); }

 private:
  std::vector<std::unique_ptr<Job>> jobs_;
  std::vector<Job*> free_;
};

// --direct: recipients of one domain handed from the worker that looked the domain up to the
// worker that owns its destination (its MX set), with the answer, so the owner needs no
// lookup of its own. Their obligations travel with them.
struct Handover {
  std::string domain;
  std::shared_ptr<const dns::MxResult> mx;
  struct Rcpt {
    RecipientRow row;
    Obligation ob;
    uint32_t run_attempts = 0;
    RcptStatus last = RcptStatus::kUnsent;
  };
  std::vector<Rcpt> rcpts;
};

// `email` with the part after its last '@' replaced (the A-label form of an IDN domain).
std::string with_domain(const std::string& email, const std::string& domain);

}  // namespace sb
