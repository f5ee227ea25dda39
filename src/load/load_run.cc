#include "load/load_run.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "base/clock.h"
#include "base/signal_mask.h"
#include "load/load_report.h"
#include "load/load_shard.h"
#include "loop/timer.h"
#include "loop/worker.h"

namespace sb {

LatencyFigures latency_figures(const LatencyHistogram& h) {
  LatencyFigures f;
  f.count = h.count();
  if (f.count == 0) return f;
  f.p50 = h.percentile(50);
  f.p90 = h.percentile(90);
  f.p99 = h.percentile(99);
  f.p999 = h.percentile(99.9);
  f.max = h.max();
  f.min = h.min();
  f.mean = h.mean();
  return f;
}

namespace {

// The run: one LoadShard per worker loop, started on one shared timeline. This thread only
// waits, asks the shards for their figures once a second (a closure on each loop, so the
// shards keep no lock), and merges them into the report and the summary.
class LoadRun {
 public:
  LoadRun(const LoadConfig& cfg, std::FILE* out) : cfg_(cfg), out_(out) {
    // A worker without a connection would have nothing to do.
    n_ = std::max<uint32_t>(1, std::min(cfg_.workers, cfg_.pool.connections));
    for (uint32_t i = 0; i < n_; ++i) {
      ScheduleConfig sc = cfg_.schedule;
      sc.shard = i;
      sc.shards = n_;
      uint32_t conns = cfg_.pool.connections / n_ + (i < cfg_.pool.connections % n_ ? 1 : 0);
      workers_.push_back(std::make_unique<Worker>(static_cast<int>(i)));
      shards_.push_back(std::make_unique<LoadShard>(cfg_, sc, conns, i, n_, [this] {
        std::lock_guard<std::mutex> g(mu_);
        ++finished_;
        cv_.notify_all();
      }));
    }
  }

  LoadSummary run() {
    // SIGINT/SIGTERM end the run early with its summary (what is in flight finishes); a
    // second one drops the connections. One thread waits for them; the loops have them blocked.
    std::optional<RunSignals> signals([this](int n) {
      for (uint32_t i = 0; i < n_; ++i)
        workers_[i]->post([s = shards_[i].get(), first = n == 0] { s->on_signal(first); });
    });
    start_us_ = clock_.mono_us();
    for (uint32_t i = 0; i < n_; ++i) {
      workers_[i]->post([this, i] { shards_[i]->begin(workers_[i]->loop(), start_us_); });
      workers_[i]->start();
    }
    uint64_t second_start = start_us_;
    bool stop_sent = false;
    for (uint64_t k = 1;; ++k) {
      int64_t wait_us =
          static_cast<int64_t>(start_us_ + k * 1'000'000) - static_cast<int64_t>(clock_.mono_us());
      auto deadline = std::chrono::steady_clock::now() +
                      std::chrono::microseconds(std::max<int64_t>(wait_us, 0));
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_until(lk, deadline, [&] { return finished_ == n_; });
      if (finished_ == n_) break;
      lk.unlock();
      if (!stop_sent) stop_sent = stop_others_if_one_failed();
      report_second(k, second_start);
      second_start = clock_.mono_us();
    }
    signals.reset();
    for (uint32_t i = 0; i < n_; ++i) workers_[i]->post([s = shards_[i].get()] { s->teardown(); });
    for (auto& w : workers_) w->stop_and_join();
    return summarize();
  }

 private:
  // A shard whose pool gave up ends the run: the others stop as at the end of its time.
  bool stop_others_if_one_failed() {
    std::string why;
    ask_all([&](uint32_t i) {
      if (!shards_[i]->result().failure.empty()) why = shards_[i]->result().failure;
    });
    if (why.empty()) return false;
    for (uint32_t i = 0; i < n_; ++i)
      workers_[i]->post([s = shards_[i].get(), why] { s->stop_from_peer("giving up: " + why); });
    return true;
  }

  // Runs fn(i) on each shard's loop and waits for all of them.
  void ask_all(const std::function<void(uint32_t)>& fn) {
    uint32_t answered = 0;
    for (uint32_t i = 0; i < n_; ++i) {
      workers_[i]->post([&, i] {
        fn(i);
        std::lock_guard<std::mutex> g(mu_);
        ++answered;
        cv_.notify_all();
      });
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return answered == n_; });
  }

  void report_second(uint64_t k, uint64_t second_start) {
    std::vector<SecondPart> parts(n_);
    ask_all([&](uint32_t i) { shards_[i]->take_second(parts[i]); });
    uint64_t now = clock_.mono_us();
    SecondReport r;
    r.second = k;
    r.warmup = second_start < start_us_ + cfg_.schedule.warmup_us;  // the second began in it
    LatencyHistogram lat;
    for (const SecondPart& p : parts) {
      r.completed += p.completed;
      r.errors += p.errors;
      r.open_connections += p.open_connections;
      r.backlog += p.backlog;
      r.in_flight += p.in_flight;
      lat.add(p.latency);
    }
    double span = static_cast<double>(now - second_start) / 1e6;
    r.rate = span > 0 ? static_cast<double>(r.completed) / span : 0;
    r.asked_rate = cfg_.schedule.rate;
    r.latency = latency_figures(lat);
    max_open_ = std::max<uint64_t>(max_open_, r.open_connections);
    if (cfg_.json) {
      std::fprintf(out_, "%s\n", second_json(r).c_str());
      std::fflush(out_);
    }
    if (cfg_.progress) std::fprintf(stderr, "%s\n", second_text(r).c_str());
  }

  LoadSummary summarize() {
    LoadSummary s;
    s.workers = n_;
    const LoadSchedule& sched = shards_[0]->schedule();  // the timeline is the same in each
    s.open_loop = sched.open_loop();
    s.asked_rate = sched.rate();
    std::map<std::string, ShardResult::Error> errors;
    uint64_t errors_total = 0, not_started = 0, measured_taken = 0, last_completion = 0;
    uint64_t connections_ready = 0;
    std::array<uint64_t, 1000> replies{};
    LatencyHistogram latency, connect, tls;
    for (const auto& sh : shards_) {
      const ShardResult& r = sh->result();
      latency.add(r.latency);
      connect.add(r.connect);
      tls.add(r.tls);
      for (size_t c = 0; c < replies.size(); ++c) replies[c] += r.replies[c];
      for (const auto& [kind, e] : r.errors) {
        auto [it, fresh] = errors.try_emplace(kind, e);
        if (!fresh) it->second.count += e.count;
      }
      errors_total += r.errors_total;
      s.started += r.started;
      s.completed += r.completed;
      s.sent += r.sent;
      s.failed += r.failed;
      s.warmup += r.warmup;
      s.recipients_sent += r.recipients_sent;
      s.bytes += r.bytes;
      not_started += r.not_started;
      measured_taken += r.measured_taken;
      connections_ready += r.connections_ready;
      s.connections_opened += r.connections_opened;
      s.connections_failed += r.connections_failed;
      last_completion = std::max(last_completion, r.last_completion_us);
      if (s.failure.empty()) s.failure = r.failure;
      s.interrupted = s.interrupted || r.interrupted;
    }
    uint64_t from = sched.measure_start_us();
    uint64_t until =
        s.interrupted ? last_completion : std::max(sched.nominal_end_us(), last_completion);
    s.elapsed_s = until > from ? static_cast<double>(until - from) / 1e6 : 0;
    s.achieved_rate = s.elapsed_s > 0 ? static_cast<double>(s.sent) / s.elapsed_s : 0;
    s.planned = s.open_loop ? measured_taken + not_started : 0;
    s.latency = latency_figures(latency);
    s.connect = latency_figures(connect);
    s.tls = latency_figures(tls);
    s.max_open =
        std::max<uint64_t>(max_open_, std::min<uint64_t>(connections_ready, cfg_.pool.connections));
    for (size_t c = 1; c < replies.size(); ++c)  // 0: no reply came
      if (replies[c] != 0) s.replies.emplace_back(static_cast<int>(c), replies[c]);
    if (s.interrupted) {
      // The rest of the schedule was cut short by the user, not missed by the server.
      s.planned -= not_started;
      not_started = 0;
    }
    s.not_started = not_started;
    auto note = [&](const std::string& kind, const std::string& example, uint64_t n) {
      errors_total += n;
      auto [it, fresh] = errors.try_emplace(kind);
      it->second.count += n;
      if (fresh) it->second.example = example;
    };
    if (not_started != 0) {
      note("not started",
           std::to_string(not_started) + " transactions were due before the end and never started",
           not_started);
    }
    if (!s.failure.empty()) note("pool failed", s.failure, 1);
    for (auto& [kind, e] : errors) s.errors.push_back(ErrorCount{kind, e.count, e.example});
    s.errors_total = errors_total;
    s.rate_met = !s.open_loop || (s.asked_rate > 0 &&
                                  std::abs(s.achieved_rate - s.asked_rate) <= 0.01 * s.asked_rate);
    s.exit_code = s.rate_met && s.errors_total == 0 && s.failure.empty() ? 0 : 1;
    return s;
  }

  const LoadConfig& cfg_;
  std::FILE* out_;
  SystemClock clock_;
  uint32_t n_ = 1;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<LoadShard>> shards_;
  uint64_t start_us_ = 0;
  uint64_t max_open_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  uint32_t finished_ = 0;
};

}  // namespace

LoadSummary run_load(const LoadConfig& cfg, std::FILE* out) {
  auto run = std::make_unique<LoadRun>(cfg, out);
  return run->run();
}

}  // namespace sb
