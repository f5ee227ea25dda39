// The Job free-list and the address helpers jobs are routed by.
#include "engine/job.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace sb {

Job* JobPool::take() {
  if (free_.empty()) {
    jobs_.push_back(std::make_unique<Job>());
    return jobs_.back().get();
  }
  Job* j = free_.back();
  free_.pop_back();
  return j;
}

void JobPool::give_back(Job* j) {
  if (j->ob.open()) {
    // A recipient recycled without an outcome for the ledger: lost. Never in a correct run.
    std::fprintf(stderr, "smtpblast: BUG: recipient %lld <%s> recycled unsettled\n",
                 static_cast<long long>(j->row.id), j->row.email.c_str());
    if (Ledger::default_strict()) std::abort();
    (void)j->ob.consume();
  }
  j->retry = false;
  j->retry_now = false;
  j->not_tried = 0;
  j->run_attempts = 0;
  j->last = RcptStatus::kUnsent;
  j->row.values.clear();
  j->rcpt.clear();
  j->dest = nullptr;
  j->leader = nullptr;
  free_.push_back(j);
}

std::string with_domain(const std::string& email, const std::string& domain) {
  return email.substr(0, email.rfind('@') + 1) + domain;
}

}  // namespace sb
