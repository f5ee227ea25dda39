// A SessionHost that hands out prepared transactions and records every outcome (tests only).
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "smtp/session.h"

namespace sb::testing {

struct RecordedOutcome {
  std::string rcpt;
  Verdict verdict;
  int code;
  std::string text;
};

class FakeSessionHost : public SessionHost {
 public:
  // Queues a transaction of `rcpts` with `body` (wire form, used as is for DATA and BDAT).
  void add(std::string from, std::vector<std::string> rcpts, std::string body) {
    auto p = std::make_unique<Owned>();
    p->from = std::move(from);
    p->rcpts = std::move(rcpts);
    p->body = std::move(body);
    p->piece = p->body;
    p->txn.mail_from = p->from;
    for (auto& r : p->rcpts) p->txn.rcpts.push_back(TxnRcpt{r, 0});
    p->txn.body = std::span<const std::string_view>(&p->piece, 1);
    p->txn.body_size = p->body.size();
    queue_.push_back(p.get());
    owned_.push_back(std::move(p));
  }
  // The transaction added last, to set more of its fields (envid, smtputf8, eight_bit ...).
  Txn& last() { return owned_.back()->txn; }
  bool done_when_empty = true;

  Next next_txn(bool bdat, Txn*& out) override {
    last_bdat = bdat;
    if (queue_.empty()) return done_when_empty ? Next::kDone : Next::kWait;
    out = &queue_.front()->txn;
    queue_.erase(queue_.begin());
    ++handed_out;
    return Next::kTxn;
  }
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override {
    outcomes.push_back(RecordedOutcome{std::string(t.rcpts[i].address), v, code, std::string(text)});
    ++per_rcpt[&t.rcpts[i]];
  }
  void txn_done(Txn& t) override {
    ++done[&t];
    // Like the mailing engine, which may poke its sessions from inside this call.
    if (poke_on_done != nullptr) poke_on_done->poke(0);
  }
  Session* poke_on_done = nullptr;

  // Every recipient handed out has exactly one outcome, every transaction one txn_done.
  bool accounted() const {
    size_t rcpts = 0;
    for (auto& o : owned_) {
      bool handed = std::find(queue_.begin(), queue_.end(), o.get()) == queue_.end();
      if (!handed) continue;
      auto it = done.find(&o->txn);
      if (it == done.end() || it->second != 1) return false;
      for (auto& r : o->txn.rcpts) {
        auto pr = per_rcpt.find(&r);
        if (pr == per_rcpt.end() || pr->second != 1) return false;
        ++rcpts;
      }
    }
    return rcpts == outcomes.size();
  }
  const RecordedOutcome* find(const std::string& rcpt) const {
    for (auto& o : outcomes) {
      if (o.rcpt == rcpt) return &o;
    }
    return nullptr;
  }

  std::vector<RecordedOutcome> outcomes;
  std::map<const TxnRcpt*, int> per_rcpt;
  std::map<const Txn*, int> done;
  size_t handed_out = 0;
  bool last_bdat = false;

 private:
  struct Owned {
    std::string from;
    std::vector<std::string> rcpts;
    std::string body;
    std::string_view piece;
    Txn txn;
  };
  std::vector<std::unique_ptr<Owned>> owned_;
  std::vector<Owned*> queue_;
};

}  // namespace sb::testing
