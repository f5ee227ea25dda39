// The planner: claim, suppression, shard by domain, release.
#include "engine/planner.h"

#include <algorithm>
#include <functional>

#include "engine/job.h"
#include "engine/run_shared.h"

namespace sb {

Planner::Planner(TaskStore& store, Ledger& ledger, const Clock& clock, RunShared* shared, Options o)
    : store_(store), ledger_(ledger), clock_(clock), shared_(shared), o_(std::move(o)) {
  pending_.resize(o_.workers);
  parked_.assign(o_.workers, false);
  want_.assign(o_.workers, kBatch);
}

void Planner::want(size_t worker, size_t rows) {
  if (worker < want_.size()) want_[worker] = std::clamp(rows, kBatch, kMaxBatch);
}

bool Planner::claim_next(std::vector<RecipientRow>& rows, std::vector<JournalEntry>& out,
                         size_t limit) {
  rows.clear();
  if (more_later_ && clock_.mono_ms() < next_try_ms_) return true;
  // In flight in the store before any worker sees them (crash safety).
  auto got = store_.claim(cursor_, limit, rows, true);
  if (!got.ok()) {
    exhausted_ = true;
    if (error_.empty()) {
      error_ = got.error().message;
      error_text_ = got.error().describe();
    }
    return false;
  }
  // A shared store may hand back a row behind the cursor (a lease taken over): the cursor
  // never moves back, or deferred rows would be claimed twice in one run.
  if (!rows.empty()) cursor_ = std::max(cursor_, rows.back().id);
  if (rows.size() < limit) {
    more_later_ = store_.more_later();
    if (more_later_) {
      next_try_ms_ = clock_.mono_ms() + kWaitForOthersMs;
    } else {
      exhausted_ = true;
    }
  }
  for (const RecipientRow& r : rows) ledger_.claim(r.id, r.email);
  filter_suppressed(rows, out);
  return true;
}

void Planner::filter_suppressed(std::vector<RecipientRow>& rows, std::vector<JournalEntry>& out) {
  if (o_.suppress == nullptr || o_.suppress->empty()) return;
  size_t keep = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (o_.suppress->suppressed(rows[i].email)) {
      JournalEntry& r = out.emplace_back();
      r.time_ms = clock_.wall_ms();
      r.email = rows[i].email;
      r.out.id = rows[i].id;
      r.out.status = RcptStatus::kSuppressed;
      r.out.reply = "on the suppression list";
      r.out.attempts = rows[i].attempts;
      r.out.time = clock_.wall_s();
      ledger_.settle(rows[i].id, Settle::kSuppressed);
      continue;
    }
    if (keep != i) rows[keep] = std::move(rows[i]);
    ++keep;
  }
  rows.resize(keep);
}

RowsCmd Planner::rows_cmd(std::vector<RecipientRow> rows, bool exhausted) {
  RowsCmd c;
  c.obs.reserve(rows.size());
  for (const RecipientRow& r : rows) c.obs.emplace_back(r.id);
  c.rows = std::move(rows);
  c.exhausted = exhausted;
  if (o_.annotate && !c.rows.empty()) o_.annotate(c);
  return c;
}

void Planner::serve(const std::vector<size_t>& requests, bool stopping,
                    std::vector<JournalEntry>& out, std::vector<std::pair<size_t, RowsCmd>>& cmds) {
  if (o_.direct) {
    serve_direct(requests, stopping, out, cmds);
  } else {
    serve_relay(requests, stopping, out, cmds);
  }
}

void Planner::serve_relay(const std::vector<size_t>& requests, bool stopping,
                          std::vector<JournalEntry>& out,
                          std::vector<std::pair<size_t, RowsCmd>>& cmds) {
  std::vector<RecipientRow> rows;
  std::vector<size_t> asking;
  asking.swap(waiting_);
  asking.insert(asking.end(), requests.begin(), requests.end());
  for (size_t w : asking) {
    rows.clear();
    bool exhausted = exhausted_ || stopping;
    if (!exhausted) {
      (void)claim_next(rows, out, w < want_.size() ? want_[w] : kBatch);
      exhausted = exhausted_;
    }
    if (rows.empty() && !exhausted && more_later_) {
      waiting_.push_back(w);  // other nodes hold rows that may come back: ask again later
      continue;
    }
    cmds.emplace_back(w, rows_cmd(std::move(rows), exhausted));
    rows = {};
  }
}

void Planner::serve_direct(const std::vector<size_t>& requests, bool stopping,
                           std::vector<JournalEntry>& out,
                           std::vector<std::pair<size_t, RowsCmd>>& cmds) {
  const size_t n = o_.workers;
  for (size_t w : requests) parked_[w] = true;
  // Claim while a parked worker has nothing and the rows held stay bounded (a worker whose
  // domains are slow must not make the others read the whole task into memory).
  const size_t cap = kDirectQueue * n;
  if (stopping) release_all(out);
  std::vector<RecipientRow> rows;
  auto wanting = [&] {
    for (size_t i = 0; i < n; ++i) {
      if (parked_[i] && pending_[i].empty()) return true;
    }
    return false;
  };
  while (!exhausted_ && !stopping && pending_total_ < cap && wanting()) {
    if (!claim_next(rows, out) || (rows.empty() && more_later_)) break;
    if (shared_ != nullptr) shared_->add_in_transit(static_cast<int64_t>(rows.size()));
    for (auto& r : rows) {
      std::string domain = domain_of(r.email);
      auto known = domain_owner_.find(domain);
      size_t o =
          known != domain_owner_.end() ? known->second : std::hash<std::string>{}(domain) % n;
      pending_[o].push_back(std::move(r));
      ++pending_total_;
    }
  }
  bool done = exhausted_ || stopping;
  for (size_t i = 0; i < n; ++i) {
    if (!parked_[i] || (pending_[i].empty() && !done)) continue;
    parked_[i] = false;
    std::vector<RecipientRow> give;
    while (!pending_[i].empty() && give.size() < kBatch) {
      give.push_back(std::move(pending_[i].front()));
      pending_[i].pop_front();
      --pending_total_;
    }
    // A stopping worker hands claimed rows back (released), so nothing stays in flight.
    bool exhausted = done && pending_[i].empty();
    cmds.emplace_back(i, rows_cmd(std::move(give), exhausted));
  }
}

void Planner::learn_owner(const std::string& domain, size_t worker) {
  // Bounded: past this, rows of further moved domains take one extra hop between workers.
  if (domain_owner_.size() < 262144 || domain_owner_.count(domain) != 0) {
    domain_owner_[domain] = worker;
  }
}

void Planner::release_all(std::vector<JournalEntry>& out) {
  if (pending_total_ == 0) return;
  // Claimed but never handed to a worker: back to their earlier status, nothing in flight.
  for (auto& q : pending_) {
    for (const auto& r : q) {
      add_released(out, r);
      ledger_.settle(r.id, Settle::kReleased);
    }
    q.clear();
  }
  if (shared_ != nullptr) shared_->add_in_transit(-static_cast<int64_t>(pending_total_));
  pending_total_ = 0;
}

}  // namespace sb
