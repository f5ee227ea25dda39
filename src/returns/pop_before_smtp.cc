// pop3_login and PopRefresher: RemoteMailbox's login with nothing fetched.
#include "returns/pop_before_smtp.h"

#include <chrono>
#include <cstdio>

namespace sb {

Status pop3_login(const RemoteMailboxConfig& cfg) {
  if (cfg.url.rfind("pop3s://", 0) != 0 && cfg.url.rfind("pop3://", 0) != 0) {
    return make_error(ErrDomain::kConfig, "--pop-before-smtp '" + cfg.url +
                                              "' is not pop3s://user@host or pop3://user@host");
  }
  auto box = RemoteMailbox::open(cfg);  // logs in (UIDL), then QUIT when it goes
  if (!box.ok()) return box.error();
  return {};
}

PopRefresher::PopRefresher(RemoteMailboxConfig cfg, uint64_t interval_ms)
    : cfg_(std::move(cfg)), interval_ms_(interval_ms), thread_([this] { run(); }) {}

PopRefresher::~PopRefresher() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PopRefresher::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    if (cv_.wait_for(lk, std::chrono::milliseconds(interval_ms_), [this] { return stop_; })) {
      break;
    }
    lk.unlock();
    Status st = pop3_login(cfg_);
    if (!st.ok()) {
      std::fprintf(stderr, "smtpblast: warning: POP-before-SMTP refresh: %s\n",
                   st.error().message.c_str());
    }
    lk.lock();
  }
}

}  // namespace sb
