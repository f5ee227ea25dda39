// The whole engine on one thread and a FakeClock (see harness.h).
#include "engine/harness.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sb::test {

Harness::Harness(const std::vector<std::string>& emails, HarnessOptions o) : o_(std::move(o)) {
  char tmpl[] = "/tmp/sb_engine_test.XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  std::string csv = "email,name\n";
  for (size_t i = 0; i < emails.size(); ++i) csv += emails[i] + ",n" + std::to_string(i) + "\n";
  store_ = std::move(
               TaskStore::open(o_.memory_store ? std::string(":memory:") : dir_ + "/task.db", true))
               .value();
  (void)store_->import_csv_buffer(csv, "list.csv");
  TemplateOptions topts;
  topts.default_from = "sender@example.org";
  std::string raw =
      o_.same_content
          ? "From: sender@example.org\r\nSubject: hi\r\n\r\nHello all\r\n"
          : "From: sender@example.org\r\nSubject: hi {{name}}\r\n\r\nHello {{name}}\r\n";
  tpl_ =
      std::make_unique<CompiledTemplate>(std::move(CompiledTemplate::compile(raw, topts)).value());
  (void)tpl_->bind(store_->field_names());
  cfg_.from = "sender@example.org";
  cfg_.connections = o_.connections;
  cfg_.workers = static_cast<uint32_t>(o_.workers);
  cfg_.max_attempts = o_.max_attempts;
  cfg_.retry_delay_ms = o_.retry_delay_ms;
  cfg_.retry_max_ms = o_.retry_max_ms;
  cfg_.limit = o_.limit;
  cfg_.throttle.daily_limit = o_.daily_limit;
  cfg_.direct = o_.direct;
  cfg_.max_rcpt_per_txn = o_.max_rcpt_per_txn;
  cfg_.commit_interval_ms = 100;
  cfg_.stop_timeout_ms = 30000;
  throttle_ =
      std::make_unique<SharedThrottle>(std::move(make_throttle_config(cfg_.throttle)).value());
  shared_ = std::make_unique<RunShared>(cfg_.limit, inbox_);
  ledger_ = std::make_unique<Ledger>(true);
  Planner::Options po;
  po.workers = o_.workers;
  po.direct = o_.direct;
  if (!o_.suppress.empty()) {
    auto s = std::make_shared<SuppressionList>();
    std::string path = dir_ + "/suppress.txt";
    std::ofstream f(path);
    for (const auto& e : o_.suppress) f << e << "\n";
    f.close();
    (void)s->load_file(path);
    po.suppress = s;
  }
  planner_ = std::make_unique<Planner>(*store_, *ledger_, clock_, shared_.get(), po);
  journal_ = std::make_unique<Journal>(*store_, JournalOptions{});
  port_ = std::make_unique<QueuePort>(o_.workers);
  PoolConfig pcfg;
  pcfg.name = "relay 127.0.0.1:25";
  for (size_t i = 0; i < o_.workers; ++i) {
    loops_.push_back(std::make_unique<FakeLoop>(clock_, o_.seed * 1000003 + i));
    loops_.back()->plan = o_.plan;
    loops_.back()->mx_status = o_.mx;
    WorkerEngine::Deps d;
    d.index = i;
    d.workers = o_.workers;
    d.env = loops_.back().get();
    d.tpl = tpl_.get();
    d.cfg = &cfg_;
    d.pcfg = pcfg;
    d.pcfg.connections = std::max<uint32_t>(1, o_.connections / static_cast<uint32_t>(o_.workers));
    d.throttle = throttle_.get();
    d.shared = shared_.get();
    d.inbox = &inbox_;
    d.seed = static_cast<uint32_t>(o_.seed + i);
    engines_.push_back(std::make_unique<WorkerEngine>(d));
  }
  Coordinator::Deps cd;
  cd.cfg = &cfg_;
  cd.store = store_.get();
  cd.journal = journal_.get();
  cd.ledger = ledger_.get();
  cd.planner = planner_.get();
  cd.throttle = throttle_.get();
  cd.shared = shared_.get();
  cd.inbox = &inbox_;
  cd.port = port_.get();
  cd.events = &events_;
  cd.clock = &clock_;
  cd.signals = &signals_;
  cd.workers = o_.workers;
  coord_ = std::make_unique<Coordinator>(cd);
}

Harness::~Harness() {
  engines_.clear();
  coord_.reset();
  journal_.reset();
  planner_.reset();
  store_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool Harness::turn() {
  if (!started_) {
    started_ = true;
    for (auto& e : engines_) e->start();
  }
  ++turns_;
  bool any = false;
  for (size_t i = 0; i < engines_.size(); ++i) {
    while (!port_->q[i].empty()) {
      WorkerCommand c = std::move(port_->q[i].front());
      port_->q[i].pop_front();
      engines_[i]->on_command(std::move(c));
      any = true;
    }
  }
  for (auto& l : loops_) {
    any = l->answer_lookups() || any;
    any = l->pump() || any;
    any = l->fire_due() || any;
  }
  inbox_.take(msgs_);
  any = any || !msgs_.empty();
  if (running_) running_ = coord_->step(msgs_);
  return any;
}

bool Harness::run(uint64_t max_turns) {
  while (running_ && turns_ < max_turns) {
    if (!turn()) {
      uint64_t next = 0;
      for (auto& l : loops_) {
        uint64_t d = l->next_due();
        if (d != 0 && (next == 0 || d < next)) next = d;
      }
      uint64_t now = clock_.mono_ms();
      clock_.advance(next > now ? std::min<uint64_t>(next - now, 100) : 100);
    }
  }
  if (running_) return false;
  if (!wound_up_) {
    wound_up_ = true;
    for (auto& e : engines_) e->shutdown();
    coord_->wind_up();
  }
  return true;
}

StatusCounts Harness::counts() { return std::move(store_->counts(false)).value(); }

}  // namespace sb::test
