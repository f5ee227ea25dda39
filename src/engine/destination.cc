// A destination's pool and backoff.
#include "engine/destination.h"

namespace sb {

Destination::Destination(DestinationOwner& owner, LoopEnv& env, std::string key,
                         const PoolConfig& pcfg, std::unique_ptr<Throttle> push)
    : owner_(owner), env_(env), key_(std::move(key)), pcfg_(pcfg), push_(std::move(push)) {}

Destination::~Destination() = default;

void Destination::start() {
  timer_ = env_.timer([this] { owner_.backoff_over(*this); });
  pool_ = env_.pool(pcfg_, *this);
}

void Destination::begin_backoff(uint64_t delay_ms) {
  backing_off_ = true;
  timer_->start(delay_ms);
}

void Destination::end_backoff() {
  backing_off_ = false;
  pool_ = env_.pool(pcfg_, *this);
}

}  // namespace sb
