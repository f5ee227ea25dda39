// SmsWorker: the worker loop of an SMS run: rows in, SMS text rendered, paced by the run's
// throttle, sent through an SmsLink (SMPP binds or HTTP requests), outcomes to the coordinator.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/channel.h"
#include "engine/loop_env.h"
#include "engine/run_config.h"
#include "engine/run_shared.h"
#include "engine/run_worker.h"
#include "engine/worker_shared.h"
#include "message/sms_template.h"
#include "sms/smpp_session.h"
#include "throttle/throttle.h"

struct uv_loop_s;

namespace sb {

struct SmsRunConfig;

// One recipient in flight: its row, its obligation and its rendered SMS.
struct SmsJob {
  RecipientRow row;
  Obligation ob;
  std::string text;
  SmsMessage msg;  // what the SMPP session works on (views into row.email and text)
  uint32_t run_attempts = 0;
  uint32_t throttled = 0;  // deferrals for ESME_RTHROTTLED/RMSGQFUL/429: no attempt used
  RcptStatus last = RcptStatus::kUnsent;
  uint64_t sent_at = 0;  // wall ms when the throttle let it go
  // A concatenated message the SMSC took in part: the parts' ids ("" for one still to send)
  // and the reference they carried; the retry sends only the missing parts (SmsMessage).
  std::vector<std::string> part_ids;
  uint8_t concat_ref = 0;
};

// The worker's side of a transport.
class SmsLinkHost {
 public:
  virtual ~SmsLinkHost() = default;
  // The next SMS to send (kMessage), nothing now (kWait: poke() follows when there is), or
  // nothing ever again (kDone: unbind).
  virtual SmppHost::Next next_sms(SmsJob*& out) = 0;
  // Exactly once per SMS handed out. `code`: the SMPP command_status or the HTTP status.
  virtual void sms_outcome(SmsJob& j, SmsVerdict v, int code, std::string_view text, bool throttled,
                           std::span<const std::string> ids) = 0;
  // The provider answered (a bind, an HTTP answer): a later stop is the provider's doing.
  virtual void link_answered() = 0;
  // The transport cannot go on (bind refused, the SMSC unreachable, credentials refused).
  virtual void link_failed(const std::string& why, bool fatal) = 0;
  // A connection closed or a request ended: the worker may be finished.
  virtual void link_idle() = 0;
  // Whether connections are still wanted (a reconnect after a drop).
  virtual bool link_wanted() const = 0;
  // A delivery receipt, and a message from a phone ("STOP"), that came in on a bind.
  virtual void sms_receipt(const DeliveryReceipt& r) = 0;
  virtual void sms_reply(const MobileOriginated& mo) = 0;
};

// A transport: N SMPP binds (a window each) or an HTTP client. Runs on the worker's loop.
class SmsLink {
 public:
  virtual ~SmsLink() = default;
  // Work is queued, or the run ends (next_sms says kDone): ask the host again.
  virtual void poke() = 0;
  // Ends every connection and request now; open SMS come back deferred.
  virtual void abort(const std::string& why) = 0;
  // Connections open (or connecting), requests under way.
  virtual size_t open() const = 0;
};

using SmsLinkFactory = std::function<std::unique_ptr<SmsLink>(SmsLinkHost&)>;

// sms_links.cc: the production transports on a uv loop.
std::unique_ptr<SmsLink> make_smpp_link(uv_loop_s* loop, LoopEnv& env, const SmsRunConfig& cfg,
                                        SmsLinkHost& host);
std::unique_ptr<SmsLink> make_http_link(uv_loop_s* loop, const SmsRunConfig& cfg,
                                        SmsLinkHost& host);

// sms_setup.cc: the rows of `c` whose multi-part message an earlier run left partly accepted
// (RowsCmd::sms_resume), from the task's sms_ids; nothing for a store that keeps none.
Status find_partial_sms(TaskStore& store, RowsCmd& c);

class SmsWorker final : public RunWorker, public SmsLinkHost {
 public:
  struct Deps {
    size_t index = 0;
    LoopEnv* env = nullptr;
    const RunConfig* cfg = nullptr;
    const SmsTemplate* tpl = nullptr;
    SharedThrottle* throttle = nullptr;
    RunShared* shared = nullptr;
    CoordinatorInbox* inbox = nullptr;
    SmsLinkFactory make_link;
    uint32_t seed = 0;
  };
  explicit SmsWorker(Deps d);
  ~SmsWorker() override;

  void start() override;
  void on_command(WorkerCommand cmd) override;
  void shutdown() override;

  // SmsLinkHost
  SmppHost::Next next_sms(SmsJob*& out) override;
  void sms_outcome(SmsJob& j, SmsVerdict v, int code, std::string_view text, bool throttled,
                   std::span<const std::string> ids) override;
  void link_answered() override { shared_.relay_answered(); }
  void link_failed(const std::string& why, bool fatal) override;
  void link_idle() override { maybe_finish(); }
  bool link_wanted() const override;
  void sms_receipt(const DeliveryReceipt& r) override;
  void sms_reply(const MobileOriginated& mo) override;

 private:
  void add_batch(RowsCmd& c);
  void stop_new();
  void abort(const std::string& why);
  bool pace(uint64_t now_wall);
  void record(SmsJob* j, RcptStatus s, int code, std::string_view text,
              std::span<const std::string> ids = {});
  void retire(SmsJob* j);
  void release_row(const RecipientRow& row, Obligation& ob);
  void flush_outcomes(bool wake_now);
  void drop_queued();
  void maybe_request();
  void maybe_finish();
  void poke_later(uint64_t at_wall_ms);
  void arm_retry();
  void retry_due();
  SmsJob* take_job();
  void give_back(SmsJob* j);
  uint64_t now() const { return env_.clock().mono_ms(); }
  uint64_t wall() const { return static_cast<uint64_t>(env_.clock().wall_ms()); }

  const size_t index_;
  LoopEnv& env_;
  const RunConfig& cfg_;
  const SmsTemplate& tpl_;
  SharedThrottle& throttle_;
  RunShared& shared_;
  CoordinatorInbox& inbox_;
  SmsLinkFactory make_link_;
  std::unique_ptr<SmsLink> link_;
  std::deque<SmsJob*> queue_;
  std::multimap<uint64_t, SmsJob*> retries_;  // due (loop ms) -> job
  std::vector<std::unique_ptr<SmsJob>> jobs_;
  std::vector<SmsJob*> free_;
  OutcomeBuffer out_;      // outcomes and settlements not yet handed to the coordinator
  SmsInboundMsg inbound_;  // receipts and STOP replies, posted after the outcomes
  std::unique_ptr<EngineTimer> flush_timer_;
  std::unique_ptr<EngineTimer> retry_timer_;
  std::unique_ptr<EngineTimer> poke_timer_;
  uint64_t poke_at_ = 0;
  std::mt19937 rng_;
  size_t inflight_ = 0;
  bool requested_ = false;
  bool exhausted_ = false;
  bool finish_ordered_ = false;
  bool finished_ = false;
  bool failed_ = false;
  bool aborted_ = false;
  bool stopping_ = false;
  bool limit_posted_ = false;
};

}  // namespace sb
