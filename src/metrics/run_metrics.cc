// The run's metric set and its exposition: names, types, help texts and labels in one place.
#include "metrics/run_metrics.h"

#include <algorithm>
#include <map>

#include "metrics/exposition.h"

namespace sb::metrics {

const char* wait_name(Wait w) {
  static constexpr const char* kNames[] = {"rate",        "adaptive", "block_pause", "daily",
                                           "quota_pause", "account",  "destination"};
  static_assert(std::size(kNames) == static_cast<size_t>(Wait::kCount));
  return kNames[static_cast<size_t>(w)];
}

const char* outcome_name(Outcome o) {
  static constexpr const char* kNames[] = {"sent", "failed", "deferred", "suppressed"};
  static_assert(std::size(kNames) == static_cast<size_t>(Outcome::kCount));
  return kNames[static_cast<size_t>(o)];
}

RunMetrics::RunMetrics(size_t max_destinations) : max_destinations_(max_destinations) {
  run_.remaining.set(-1);
}

WorkerCells& RunMetrics::worker(size_t i) {
  std::lock_guard<std::mutex> g(mu_);
  while (workers_.size() <= i) workers_.push_back(std::make_unique<WorkerCells>());
  return *workers_[i];
}

DestinationCells& RunMetrics::destination(size_t i, std::string_view label) {
  std::lock_guard<std::mutex> g(mu_);
  while (workers_.size() <= i) workers_.push_back(std::make_unique<WorkerCells>());
  bool known = false;
  for (Slot& s : dests_) {
    if (s.cells->label != label) continue;
    if (s.worker == i) return *s.cells;
    known = true;  // the same label on another loop: one more slot, summed at scrape
  }
  if (!known && labels_ >= max_destinations_) return workers_[i]->other;
  if (!known) ++labels_;
  auto c = std::make_unique<DestinationCells>();
  c->label = label;
  DestinationCells& ref = *c;
  dests_.push_back(Slot{i, std::move(c)});
  return ref;
}

std::string RunMetrics::expose() const {
  std::lock_guard<std::mutex> g(mu_);
  Exposition e;
  auto sum = [&](auto field) {
    uint64_t n = 0;
    for (const auto& w : workers_) n += field(*w);
    return n;
  };
  auto isum = [&](auto field) {
    int64_t n = 0;
    for (const auto& w : workers_) n += field(*w);
    return n;
  };

  e.family("smtpblast_recipients_total", Type::kCounter,
           "Recipient outcomes recorded in the task by this run (a recipient deferred, then "
           "sent, counts once as deferred and once as sent).");
  for (size_t o = 0; o < static_cast<size_t>(Outcome::kCount); ++o) {
    e.sample("smtpblast_recipients_total", {{"outcome", outcome_name(static_cast<Outcome>(o))}},
             run_.outcomes[o].value());
  }
  e.family("smtpblast_replies_total", Type::kCounter,
           "Final SMTP replies to recipients recorded by this run, by class.");
  e.sample("smtpblast_replies_total", {{"class", "2xx"}}, run_.reply_2xx.value());
  e.sample("smtpblast_replies_total", {{"class", "4xx"}}, run_.reply_4xx.value());
  e.sample("smtpblast_replies_total", {{"class", "5xx"}}, run_.reply_5xx.value());
  if (int64_t r = run_.remaining.value(); r >= 0) {
    e.family("smtpblast_recipients_remaining", Type::kGauge,
             "Recipients not yet sent, failed or suppressed (unsent and deferred in the task).");
    e.sample_signed("smtpblast_recipients_remaining", {}, r);
  }
  e.family("smtpblast_messages_in_flight", Type::kGauge, "Messages (SMTP transactions) under way.");
  e.sample_signed("smtpblast_messages_in_flight", {},
                  isum([](const WorkerCells& w) { return w.in_flight.value(); }));
  e.family("smtpblast_connections_open", Type::kGauge, "SMTP connections open or opening.");
  e.sample_signed("smtpblast_connections_open", {},
                  isum([](const WorkerCells& w) { return w.connections_open.value(); }));
  e.family("smtpblast_connections_opened_total", Type::kCounter,
           "SMTP connections this run began to open.");
  e.sample("smtpblast_connections_opened_total", {},
           sum([](const WorkerCells& w) { return w.connections_opened.value(); }));
  e.family("smtpblast_tls_handshakes_total", Type::kCounter,
           "TLS handshakes completed, full or resuming an earlier session.");
  e.sample("smtpblast_tls_handshakes_total", {{"kind", "full"}},
           sum([](const WorkerCells& w) { return w.tls_full.value(); }));
  e.sample("smtpblast_tls_handshakes_total", {{"kind", "resumed"}},
           sum([](const WorkerCells& w) { return w.tls_resumed.value(); }));
  e.family("smtpblast_throttle_waits_total", Type::kCounter,
           "Waits before a message could start (from the first refusal to the next message let "
           "go), by the limit that began the wait.");
  for (size_t k = 0; k < static_cast<size_t>(Wait::kCount); ++k) {
    e.sample("smtpblast_throttle_waits_total", {{"limit", wait_name(static_cast<Wait>(k))}},
             sum([k](const WorkerCells& w) { return w.waits[k].value(); }));
  }
  e.family("smtpblast_throttle_granted_total", Type::kCounter,
           "Messages the throttle let start (one token each when --rate is set).");
  e.sample("smtpblast_throttle_granted_total", {},
           sum([](const WorkerCells& w) { return w.granted.value(); }));
  if (int64_t limit = run_.daily_limit.value(); limit > 0) {
    int64_t used = run_.daily_used.value();
    e.family("smtpblast_daily_quota_limit", Type::kGauge,
             "Recipients allowed in any rolling 24 hours (--daily-limit).");
    e.sample_signed("smtpblast_daily_quota_limit", {}, limit);
    e.family("smtpblast_daily_quota_used", Type::kGauge,
             "Recipients counted against the daily limit in the last 24 hours.");
    e.sample_signed("smtpblast_daily_quota_used", {}, used);
    e.family("smtpblast_daily_quota_left", Type::kGauge,
             "Recipients the daily limit still allows in the current 24-hour window.");
    e.sample_signed("smtpblast_daily_quota_left", {}, std::max<int64_t>(0, limit - used));
  }
  e.family("smtpblast_pushback_total", Type::kCounter,
           "Push-back replies from receivers: slow-down (421, 451 4.7.x) or quota.");
  e.sample("smtpblast_pushback_total", {{"kind", "slowdown"}},
           sum([](const WorkerCells& w) { return w.pushback_slowdown.value(); }));
  e.sample("smtpblast_pushback_total", {{"kind", "quota"}},
           sum([](const WorkerCells& w) { return w.pushback_quota.value(); }));
  e.family("smtpblast_dns_lookups_total", Type::kCounter,
           "MX lookups of recipient domains (--direct), by result; cached answers included.");
  e.sample("smtpblast_dns_lookups_total", {{"result", "ok"}},
           sum([](const WorkerCells& w) { return w.dns_ok.value(); }));
  e.sample("smtpblast_dns_lookups_total", {{"result", "temporary"}},
           sum([](const WorkerCells& w) { return w.dns_temporary.value(); }));
  e.sample("smtpblast_dns_lookups_total", {{"result", "permanent"}},
           sum([](const WorkerCells& w) { return w.dns_permanent.value(); }));
  {
    e.family("smtpblast_dns_lookup_duration_seconds", Type::kHistogram,
             "Time from asking for a domain's mail exchangers to the answer.");
    HistogramCounts h(kLatencyBoundsUs);
    for (const auto& w : workers_) h.add(w->dns_latency);
    e.histogram("smtpblast_dns_lookup_duration_seconds", {}, h);
  }
  {
    e.family("smtpblast_delivery_duration_seconds", Type::kHistogram,
             "Time from a transaction's MAIL FROM to each recipient's final reply.");
    HistogramCounts h(kLatencyBoundsUs);
    for (const auto& w : workers_) h.add(w->delivery_latency);
    e.histogram("smtpblast_delivery_duration_seconds", {}, h);
  }
  if (direct_.load() || !dests_.empty()) {
    // Labels in the order the run first met them; the same label on two loops is one series.
    std::vector<std::string> order;
    std::map<std::string, std::array<uint64_t, 3>> by_label;
    for (const Slot& s : dests_) {
      auto [it, fresh] = by_label.try_emplace(s.cells->label, std::array<uint64_t, 3>{});
      if (fresh) order.push_back(s.cells->label);
      for (size_t o = 0; o < 3; ++o) it->second[o] += s.cells->outcomes[o].value();
    }
    std::array<uint64_t, 3> other{};
    for (const auto& w : workers_) {
      for (size_t o = 0; o < 3; ++o) other[o] += w->other.outcomes[o].value();
    }
    e.family("smtpblast_destination_recipients_total", Type::kCounter,
             "--direct: recipient outcomes per destination (its first mail exchanger); "
             "destinations past the cap are counted as \"other\".");
    auto put = [&](const std::string& label, const std::array<uint64_t, 3>& v) {
      for (size_t o = 0; o < 3; ++o) {
        e.sample("smtpblast_destination_recipients_total",
                 {{"destination", label}, {"outcome", outcome_name(static_cast<Outcome>(o))}},
                 v[o]);
      }
    };
    for (const std::string& l : order) put(l, by_label[l]);
    put("other", other);
  }
  e.family("smtpblast_run_finished", Type::kGauge,
           "Whether the run has ended: 1 once its figures are final, 0 while it runs.");
  e.sample("smtpblast_run_finished", {}, static_cast<uint64_t>(finished_.load() ? 1 : 0));
  return e.take();
}

}  // namespace sb::metrics
