// PgTaskStore after a reconnect: this node's rows in the database put back in line with what
// its run holds (issue 13: a restarted server must not leave rows that nobody sends).
#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "pg/pg_store.h"

namespace sb {

namespace {

template <class Ids>
std::string reconcile_id_array(const Ids& ids) {
  std::string s = "{";
  for (int64_t id : ids) {
    if (s.size() > 1) s += ',';
    s += std::to_string(id);
  }
  return s + "}";
}

}  // namespace

void PgTaskStore::reconcile() {
  in_reconcile_ = true;
  // The connection may break again while this runs (run() reconnects and sets recheck_):
  // what it wrote may be lost too, so it starts over, a few times at most.
  for (int tries = 0; recheck_ && tries < 3; ++tries) {
    recheck_ = false;
    Status s = reconcile_once();
    if (s) continue;
    if (db_->broken()) {
      recheck_ = true;  // still away: before the next statement (the claim reports it)
    } else if (reconcile_error_.empty()) {
      reconcile_error_ = s.error().message;  // not the connection: the run stops
    }
    break;
  }
  in_reconcile_ = false;
}

Status PgTaskStore::reconcile_once() {
  const std::string epoch = std::to_string(epoch_);
  // Rows the run holds whose claim the server lost (unsent or deferred again, no owner):
  // this node's again, unless another node claimed them meanwhile (its record stands then,
  // and the fence refuses this node's outcome).
  if (!held_.empty()) {
    auto r =
        run("UPDATE smtpblast_recipients SET status = 5, node = $2, epoch = $3, "
            "lease_deadline = now() + $4::bigint * interval '1 millisecond' "
            "WHERE task = $1 AND id = ANY($5::bigint[]) AND epoch IS NULL AND status IN (0, 2)",
            {task_, node_, epoch, std::to_string(opts_.lease_ms), reconcile_id_array(held_)});
    if (!r) return r.error();
  }
  // This node's rows that the run does not hold: the server lost their outcome (written
  // again from recent_), or the answer to the claim that took them (nothing was sent: the
  // next claim hands them out). Found by the partial index on (task, epoch, id).
  auto mine =
      run("SELECT id FROM smtpblast_recipients WHERE task = $1 AND epoch = $2 AND status IN (2, 5)",
          {task_, epoch});
  if (!mine) return mine.error();
  std::unordered_map<int64_t, const Outcome*> orphans;
  for (int i = 0; i < mine->rows(); ++i) {
    int64_t id = mine->int64(i, 0);
    if (!held_.contains(id)) orphans.emplace(id, nullptr);
  }
  for (const Recorded& b : recent_) {
    for (const Outcome& o : b.outcomes) {
      if (auto it = orphans.find(o.id); it != orphans.end()) it->second = &o;  // the latest
    }
  }
  std::vector<Outcome> again;
  adopt_.clear();
  for (const auto& [id, o] : orphans) {
    if (o != nullptr) {
      again.push_back(*o);
    } else {
      adopt_.push_back(id);
    }
  }
  std::sort(adopt_.begin(), adopt_.end());
  return record(again);
}

void PgTaskStore::adopted(const std::vector<int64_t>& offered, const PgResult& r, size_t limit) {
  // Offered to a claim: taken, or no longer this node's (another node's record stands), or
  // left out by the claim's limit (only when it came full, and then after its last row).
  const bool full = static_cast<size_t>(r.rows()) >= limit;
  int64_t last = 0;
  for (int i = 0; i < r.rows(); ++i) last = std::max(last, r.int64(i, 0));
  std::vector<int64_t> settled;
  for (int64_t id : offered)
    if (!full || id <= last) settled.push_back(id);
  std::sort(settled.begin(), settled.end());
  std::erase_if(adopt_,
                [&](int64_t id) { return std::binary_search(settled.begin(), settled.end(), id); });
}

}  // namespace sb
